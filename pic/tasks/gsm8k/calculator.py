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
MAX_STEPS = 64  # steps checked per solution (GSM8K solutions have 2 to 8)
MAX_EQUALS = 256  # `=` signs read per solution

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
    """GSM8K writing to Python arithmetic: drop $ and thousands commas, x/× to *, ÷ to /, and N% to (N/100)."""
    text = expression.strip().replace("$", "").replace("×", "*").replace("÷", "/")
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    text = re.sub(r"(?<=[\d)])\s*x\s*(?=[\d(])", "*", text)
    return re.sub(r"(\d+(?:\.\d+)?|\.\d+)\s*%", r"(\1/100)", text).strip()


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
# one token per match, each pattern free of nested repetition, so scanning is linear in the text's length
_TOKEN = re.compile(r"(?P<num>\$?(?:\d+(?:,\d{3})*(?:\.\d+)?|\.\d+))|(?P<pct>%)|(?P<op>[-+*/×÷])|(?P<lp>\()"
                    r"|(?P<rp>\))|(?P<eq>=)|(?P<word>[A-Za-z_]+)|(?P<space>\s+)|(?P<other>.)", re.DOTALL)


def _tokens(text: str) -> list[tuple[str, str, int, int]]:
    """(kind, text, start, end) of every token; a lone word `x` is the multiplication sign; spaces are dropped."""
    out = []
    for m in _TOKEN.finditer(text):
        kind = "op" if m.lastgroup == "word" and m.group() == "x" else m.lastgroup
        if kind != "space":
            out.append((kind, m.group(), m.start(), m.end()))
    return out


def _term_before(tokens, j: int) -> int | None:
    """Index of the first token of the term `[(] number [%] [)]` that ends at token j, or None."""
    if j >= 0 and tokens[j][0] == "rp":
        j -= 1
    if j >= 0 and tokens[j][0] == "pct":
        j -= 1
    if j < 0 or tokens[j][0] != "num":
        return None
    return j - 1 if j >= 1 and tokens[j - 1][0] == "lp" else j


def _expression_before(tokens) -> int | None:
    """First token of the longest `term (op term)+` that ends at the last token; None if there is none."""
    start = _term_before(tokens, len(tokens) - 1)
    if start is None:
        return None
    terms = 1
    while start >= 2 and tokens[start - 1][0] == "op":
        previous = _term_before(tokens, start - 2)
        if previous is None:
            break
        start, terms = previous, terms + 1
    return start if terms > 1 else None


def _result_after(tokens) -> int | None:
    """Last token of the shown result `[-]number [/ number] [%]` that the tokens start with, or None."""
    j = 0
    if len(tokens) > 1 and tokens[0][1] == "-" and tokens[0][3] == tokens[1][2]:  # a sign against the number
        j = 1
    if j >= len(tokens) or tokens[j][0] != "num":
        return None
    if j + 2 < len(tokens) and tokens[j + 1][1] == "/" and tokens[j + 2][0] == "num":
        j += 2  # a shown result may be a fraction, 2/3
    if j + 1 < len(tokens) and tokens[j + 1][0] == "pct":
        j += 1
    return j


def check_steps(solution: str) -> list[Step]:
    """Every step of a solution, in order, each recomputed. An annotation and the inline equation it sits in
    count once (the annotation); an annotation's shown result after `>>` is not re-read.

    Inline equations `a op b [op c ...] = result` are read around each `=`: the tokens since the previous `=`
    (at most 2 * MAX_CHARS characters back) and the shown result after it, so the time is linear in the text's
    length; at most MAX_STEPS steps and MAX_EQUALS `=` signs are read (a GSM8K solution has a handful; a
    degenerate repetition gets no more time)."""
    steps = []
    for m in _ANNOTATION.finditer(solution):
        if len(steps) >= MAX_STEPS:
            break
        steps.append(_check(m.group(1), m.group(2), m.end()))
    masked = _ANNOTATION.sub(lambda m: "\0" * len(m.group(0)), solution)  # keeps offsets; blocks inline matches
    equals = [m.start() for m, _ in zip(re.finditer("=", masked), range(MAX_EQUALS))]
    for n, i in enumerate(equals):
        if len(steps) >= MAX_STEPS:
            break
        start = max(equals[n - 1] + 1 if n else 0, i - 2 * MAX_CHARS)
        left = _tokens(masked[start:i])
        first = _expression_before(left)
        if first is None:
            continue
        end = min(equals[n + 1] if n + 1 < len(equals) else len(masked), i + 1 + 2 * MAX_CHARS)
        right = _tokens(masked[i + 1:end])
        last = _result_after(right)
        if last is not None:
            steps.append(_check(masked[start + left[first][2]:start + left[-1][3]],
                                masked[i + 1 + right[0][2]:i + 1 + right[last][3]], i + 1 + right[last][3]))
    return sorted(steps, key=lambda s: s.end)


def _check(expression: str, claimed: str, end: int) -> Step:
    try:
        computed = evaluate_arithmetic(expression)
        shown = evaluate_arithmetic(claimed)
    except UnsafeExpression as err:
        return Step(expression, claimed, False, end, str(err))
    # "20/50*100 = 40%" is as common as "20/50 = 40%": a shown percentage matches either reading
    ok = _close(computed, shown) or ("%" in claimed and _close(computed, 100 * shown))
    return Step(expression, claimed, ok, end, "" if ok else f"{expression} is {computed:g}, not {claimed}")


def step_counts(solution: str) -> tuple[int, int]:
    """(steps the calculator accepts, steps it rejects or cannot verify)."""
    steps = check_steps(solution)
    right = sum(s.ok for s in steps)
    return right, len(steps) - right


def calculator_energy(solution: str) -> float:
    """(wrong + 1) / (steps + 2) - 1/2: 0 for a solution with no checkable step (no evidence either way), towards
    -1/2 as more steps check and +1/2 as more fail (the Laplace estimate of the wrong share, centred)."""
    right, wrong = step_counts(solution)
    return (wrong + 1) / (right + wrong + 2) - 0.5


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
