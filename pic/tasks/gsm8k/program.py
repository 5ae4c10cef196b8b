"""Program-of-thought answers without running model output: a whitelisted interpreter for the `solution()` functions
a model writes.

The text is parsed with Python's `ast` (parsing runs nothing) and the tree is walked here, node by node. Allowed:
numbers, names bound earlier, assignments (plain and augmented), arithmetic (+ - * / // % and ** with a small
exponent), comparisons and `if`, the calls round/min/max/abs/int/float on numbers, a `for` over `range(...)` of
bounded length with break/continue, and `return`. Everything else (imports, attributes, strings, lists, any other
call, `while`, nested functions, recursion) is refused, and so are programs past the bounds on length, magnitude
and steps. `exec`, `eval`, `compile` and subprocesses are never used; a refused program has no answer and counts
as wrong.
"""
from __future__ import annotations

import ast
import math
import operator
from dataclasses import dataclass

MAX_CHARS = 4000  # a GSM8K program is a few hundred characters
MAX_NODES = 800
MAX_STEPS = 20_000  # statements and expression nodes evaluated, loops included
MAX_RANGE = 10_000  # iterations of one for loop
MAX_EXPONENT = 64
MAX_MAGNITUDE = 1e15  # the calculator's bound

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_COMPARE = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
            ast.Eq: operator.eq, ast.NotEq: operator.ne}
_CALLS = {"round": round, "min": min, "max": max, "abs": abs, "int": int, "float": float}


class ProgramRefused(ValueError):
    """Not a program of the allowed kind, or past a bound; the message says which."""


@dataclass(frozen=True)
class ProgramResult:
    value: float | None  # the returned number; None when refused
    reason: str = ""  # why it was refused ("" when it ran)

    @property
    def ok(self) -> bool:
        return self.value is not None


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Return(Exception):
    def __init__(self, value):
        self.value = value


def function_source(body: str, header: str = "def solution():\n") -> str:
    """A whole program from the header the prompt wrote and the body the model continued with."""
    return header + body


def run_program(source: str) -> ProgramResult:
    """The number `solution()` returns, computed by the whitelisted interpreter; refused programs give value None
    and the reason."""
    try:
        return ProgramResult(_Interpreter(source).run())
    except ProgramRefused as err:
        return ProgramResult(None, str(err))


def program_answer(source: str) -> float | None:
    return run_program(source).value


class _Interpreter:
    def __init__(self, source: str):
        if not source.strip() or len(source) > MAX_CHARS:
            raise ProgramRefused(f"program of {len(source)} characters (allowed: 1 to {MAX_CHARS})")
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
            raise ProgramRefused(f"not Python: {type(err).__name__}") from None
        nodes = sum(1 for _ in ast.walk(tree))
        if nodes > MAX_NODES:
            raise ProgramRefused(f"{nodes} syntax nodes (allowed: {MAX_NODES})")
        functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
        others = [n for n in tree.body if not isinstance(n, ast.FunctionDef) and not _is_entry_call(n)]
        if len(functions) != 1 or others:
            raise ProgramRefused("the program must be one function definition (and at most a call of it)")
        fn = functions[0]
        if fn.decorator_list or fn.args.args or fn.args.vararg or fn.args.kwarg or fn.args.kwonlyargs \
                or fn.args.posonlyargs:
            raise ProgramRefused("the function must take no arguments and have no decorators")
        self.body, self.steps, self.names = fn.body, 0, {}

    def run(self) -> float:
        try:
            self._block(self.body)
        except _Return as r:
            return self._number(r.value, "the returned value")
        except (_Break, _Continue):
            raise ProgramRefused("break/continue outside a loop") from None
        raise ProgramRefused("the function returns nothing")

    def _tick(self):
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise ProgramRefused(f"more than {MAX_STEPS} steps")

    def _block(self, statements):
        for s in statements:
            self._statement(s)

    def _statement(self, node):
        self._tick()
        if isinstance(node, ast.Assign):
            value = self._expr(node.value)
            for target in node.targets:
                self._assign(target, value)
        elif isinstance(node, ast.AugAssign):
            if not isinstance(node.target, ast.Name) or type(node.op) not in _BINARY:
                raise ProgramRefused(f"augmented assignment to {type(node.target).__name__} is not allowed")
            self._assign(node.target, self._binary(node.op, self._name(node.target.id), self._expr(node.value)))
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            self._assign(node.target, self._expr(node.value))
        elif isinstance(node, ast.Return):
            raise _Return(self._expr(node.value) if node.value is not None else None)
        elif isinstance(node, ast.If):
            self._block(node.body if self._expr(node.test) else node.orelse)
        elif isinstance(node, ast.For):
            self._for(node)
        elif isinstance(node, ast.Break):
            raise _Break
        elif isinstance(node, ast.Continue):
            raise _Continue
        elif isinstance(node, ast.Pass):
            pass
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            pass  # a docstring
        else:
            raise ProgramRefused(f"{type(node).__name__} is not allowed")

    def _for(self, node: ast.For):
        if node.orelse or not isinstance(node.target, ast.Name):
            raise ProgramRefused("only `for name in range(...)` without else is allowed")
        it = node.iter
        if not (isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range"
                and not it.keywords and 1 <= len(it.args) <= 3):
            raise ProgramRefused("a for loop may only run over range(...)")
        bounds = [self._expr(a) for a in it.args]
        if any(isinstance(b, bool) or not isinstance(b, int) for b in bounds):
            raise ProgramRefused("range() takes whole numbers")
        try:
            r = range(*bounds)
        except ValueError as err:
            raise ProgramRefused(f"range(): {err}") from None
        if len(r) > MAX_RANGE:
            raise ProgramRefused(f"a loop of {len(r)} iterations (allowed: {MAX_RANGE})")
        for i in r:
            self._tick()
            self.names[node.target.id] = i
            try:
                self._block(node.body)
            except _Break:
                break
            except _Continue:
                continue

    def _assign(self, target, value):
        if not isinstance(target, ast.Name):
            raise ProgramRefused(f"assignment to {type(target).__name__} is not allowed")
        if target.id in _CALLS or target.id == "range":
            raise ProgramRefused(f"assignment to the built-in {target.id!r}")
        self.names[target.id] = value

    def _name(self, name: str):
        if name not in self.names:
            raise ProgramRefused(f"name {name!r} is used before it is assigned (or is not allowed)")
        return self.names[name]

    def _expr(self, node):
        self._tick()
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or type(node.value) not in (int, float):
                raise ProgramRefused(f"constant {type(node.value).__name__} is not allowed")
            return self._number(node.value, "a constant")
        if isinstance(node, ast.Name):
            return self._name(node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Not)):
            v = self._expr(node.operand)
            return -v if isinstance(node.op, ast.USub) else (not v) if isinstance(node.op, ast.Not) else +v
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return self._binary(node.op, self._expr(node.left), self._expr(node.right))
        if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
            left = self._expr(node.left)
            for op, right_node in zip(node.ops, node.comparators):
                right = self._expr(right_node)
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.BoolOp):
            values = [self._expr(v) for v in node.values]
            return all(values) if isinstance(node.op, ast.And) else any(values)
        if isinstance(node, ast.IfExp):
            return self._expr(node.body) if self._expr(node.test) else self._expr(node.orelse)
        if isinstance(node, ast.Call):
            return self._call(node)
        raise ProgramRefused(f"{type(node).__name__} is not allowed")

    def _call(self, node: ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _CALLS:
            what = node.func.id if isinstance(node.func, ast.Name) else type(node.func).__name__
            raise ProgramRefused(f"call of {what} is not allowed (only {', '.join(_CALLS)})")
        if node.keywords or not node.args or (node.func.id in ("abs", "int", "float") and len(node.args) != 1) \
                or (node.func.id == "round" and len(node.args) > 2):
            raise ProgramRefused(f"{node.func.id}() with these arguments is not allowed")
        args = [self._expr(a) for a in node.args]
        if node.func.id == "round" and len(args) == 2 and (not isinstance(args[1], int) or abs(args[1]) > 15):
            raise ProgramRefused("round() to more than 15 digits")
        try:
            value = _CALLS[node.func.id](*args)
        except (TypeError, ValueError, OverflowError) as err:
            raise ProgramRefused(f"{node.func.id}(): {err}") from None
        return self._number(value, f"{node.func.id}()")

    def _binary(self, op, left, right):
        if isinstance(op, (ast.Div, ast.FloorDiv, ast.Mod)) and right == 0:
            raise ProgramRefused("division by zero")
        if isinstance(op, ast.Pow):
            if abs(right) > MAX_EXPONENT:
                raise ProgramRefused(f"a power of exponent {right} (allowed: up to {MAX_EXPONENT})")
            if left == 0 and right < 0:
                raise ProgramRefused("division by zero")
            if left < 0 and right != int(right):
                raise ProgramRefused("a fractional power of a negative number")
        try:
            value = _BINARY[type(op)](left, right)
        except (OverflowError, ZeroDivisionError) as err:
            raise ProgramRefused(f"arithmetic error: {err}") from None
        return self._number(value, type(op).__name__)

    @staticmethod
    def _number(value, what: str):
        if isinstance(value, bool):
            return value
        if type(value) not in (int, float):
            raise ProgramRefused(f"{what} is not a number")
        if (isinstance(value, float) and not math.isfinite(value)) or abs(value) > MAX_MAGNITUDE:
            raise ProgramRefused(f"{what}: magnitude beyond {MAX_MAGNITUDE:g}")
        return value


def _is_entry_call(node) -> bool:
    """`solution()` or `print(solution())` at the top level: how a script calls its function; not run."""
    if not isinstance(node, ast.Expr) or not isinstance(node.value, ast.Call):
        return False
    call = node.value
    if isinstance(call.func, ast.Name) and call.func.id == "print" and len(call.args) == 1:
        call = call.args[0]
    return isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and not call.args and not call.keywords
