"""A calculator that rechecks every arithmetic step of a GSM8K-style solution, without ever running model output.

Steps are the `<<expr=value>>` annotations and inline equations `a op b = c`. Expressions are parsed with Python's
`ast` into a tree that may hold only numbers, + - * /, unary minus and parentheses, then evaluated by walking that
tree with bounded size and magnitude. Anything else (names, calls, `**`, attributes, huge literals) makes the step
unverifiable, which counts as wrong. `eval` is never used.
"""
from __future__ import annotations

import ast
import math
import operator
import re
from dataclasses import dataclass

MAX_CHARS = 120  # longer expressions are not GSM8K arithmetic
MAX_NODES = 64
MAX_MAGNITUDE = 1e15

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


class UnsafeExpression(ValueError):
    """Not plain bounded arithmetic; the message says why."""


def evaluate_arithmetic(expression: str) -> float:
    """The value of numbers combined with + - * / and parentheses; raises UnsafeExpression for anything else."""
    text = _normalise(expression)
    if not text or len(text) > MAX_CHARS:
        raise UnsafeExpression(f"expression of {len(text)} characters (allowed: 1 to {MAX_CHARS})")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
        raise UnsafeExpression(f"not arithmetic: {text!r} ({type(err).__name__})") from None
    nodes = sum(1 for _ in ast.walk(tree))
    if nodes > MAX_NODES:
        raise UnsafeExpression(f"{nodes} syntax nodes (allowed: {MAX_NODES})")
    return _value(tree.body)


def _value(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _bounded(float(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _value(node.operand)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Div) and right == 0:
            raise UnsafeExpression("division by zero")
        return _bounded(_BINARY[type(node.op)](left, right))
    what = type(node.op).__name__ if isinstance(node, (ast.BinOp, ast.UnaryOp)) else type(node).__name__
    raise UnsafeExpression(f"{what} is not allowed (only numbers, + - * /, parentheses)")


def _bounded(v: float) -> float:
    if not math.isfinite(v) or abs(v) > MAX_MAGNITUDE:
        raise UnsafeExpression(f"magnitude beyond {MAX_MAGNITUDE:g}")
    return v


def _normalise(expression: str) -> str:
    """GSM8K writing to Python arithmetic: drop $ and thousands commas, x/× to *, ÷ to /, trailing %."""
    text = expression.strip().replace("$", "").replace("×", "*").replace("÷", "/")
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    text = re.sub(r"(?<=[\d)])\s*x\s*(?=[\d(])", "*", text)
    return text.rstrip("%").strip()


def _close(computed: float, claimed: float) -> bool:
    """Equal up to GSM8K's rounding of shown results (two decimals, or 0.1% of the value)."""
    return abs(computed - claimed) <= max(0.01, 1e-3 * abs(claimed))


@dataclass(frozen=True)
class Step:
    expression: str
    claimed: str
    ok: bool
    end: int  # character offset in the solution where the step ends
    reason: str = ""


_ANNOTATION = re.compile(r"<<([^<>=]*)=([^<>]*)>>")
_NUM = r"\$?\d[\d,]*(?:\.\d+)?|\$?\.\d+"
_INLINE = re.compile(rf"((?:\(?\s*(?:{_NUM})\s*\)?\s*[-+*/x×÷]\s*)+\(?\s*(?:{_NUM})\s*\)?)\s*=\s*"
                     rf"(-?(?:{_NUM})(?:\s*/\s*(?:{_NUM}))?)")  # a shown result may be a fraction, 2/3


def check_steps(solution: str) -> list[Step]:
    """Every step of a solution, in order, each recomputed. An annotation and the inline equation it sits in
    count once (the annotation); an annotation's shown result after `>>` is not re-read."""
    steps = []
    for m in _ANNOTATION.finditer(solution):
        steps.append(_check(m.group(1), m.group(2), m.end()))
    masked = _ANNOTATION.sub(lambda m: "\0" * len(m.group(0)), solution)  # keeps offsets; blocks inline matches
    for m in _INLINE.finditer(masked):
        steps.append(_check(m.group(1), m.group(2), m.end()))
    return sorted(steps, key=lambda s: s.end)


def _check(expression: str, claimed: str, end: int) -> Step:
    try:
        computed = evaluate_arithmetic(expression)
        shown = evaluate_arithmetic(claimed)
    except UnsafeExpression as err:
        return Step(expression, claimed, False, end, str(err))
    ok = _close(computed, shown)
    return Step(expression, claimed, ok, end, "" if ok else f"{expression} is {computed:g}, not {claimed}")


def wrong_step_share(solution: str) -> float:
    """Share of steps the calculator rejects; 1.0 for a solution with no checkable step (no support at all)."""
    steps = check_steps(solution)
    return sum(not s.ok for s in steps) / len(steps) if steps else 1.0


def accepted_prefix(solution: str) -> str:
    """The longest run of whole leading lines whose steps the calculator accepts, leaving out at least the last
    reasoning line and the "####" answer line, so that a re-proposal always re-derives at least one step."""
    lines = solution.split("\n")
    body = [i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("####")]
    if len(body) <= 1:
        return ""
    bad_ends = [s.end for s in check_steps(solution) if not s.ok]
    first_bad = min(bad_ends) if bad_ends else len(solution) + 1
    kept, offset = 0, 0
    for i, line in enumerate(lines):
        offset += len(line) + 1
        if i >= body[-1] or offset - 1 >= first_bad:
            break
        kept = offset
    return solution[:kept]
