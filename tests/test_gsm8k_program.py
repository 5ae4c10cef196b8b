"""Programs a model writes are never run: a whitelisted interpreter computes what `solution()` returns, and every
hostile or unbounded program is refused quickly, naming why, and counted wrong."""
import time

import pytest

from pic.tasks.gsm8k.formats import POT, pot_answer, pot_stop
from pic.tasks.gsm8k.program import MAX_RANGE, run_program

GOOD = '''def solution():
    """Eggs laid over four days."""
    day1 = 50
    day2 = day1 * 2
    total = 0
    for i in range(3):
        if i == 1:
            continue
        total += day2 // 4 % 7
    total += round(abs(-2.4)) + max(day1, 3) - min(2, 5) ** 2
    return total / 2 + float(int(3.9))
'''


def test_a_plain_solution_function_is_computed():
    assert run_program(GOOD).value == pytest.approx((2 * (100 // 4 % 7) + 2 + 50 - 4) / 2 + 3)
    assert run_program("def solution():\n    x = 3\n    x -= 1\n    return x\nprint(solution())").value == 2


@pytest.mark.parametrize("hostile, why", [
    ("import os\ndef solution():\n    return 1", "one function definition"),
    ("def solution():\n    import os\n    return 1", "Import is not allowed"),
    ("def solution():\n    return (1).__class__", "Attribute is not allowed"),
    ("def solution():\n    return open('x')", "call of open is not allowed"),
    ("def solution():\n    return eval('1')", "call of eval is not allowed"),
    ("def solution():\n    return __import__('os')", "call of __import__ is not allowed"),
    ("def solution():\n    while True:\n        pass\n    return 1", "While is not allowed"),
    ("def solution():\n    return solution()", "call of solution is not allowed"),
    ("def solution():\n    def f():\n        return 1\n    return f()", "FunctionDef is not allowed"),
    ("def solution():\n    return 9 ** 9 ** 9", "a power of exponent"),
    ("def solution():\n    return 10 ** 20", "magnitude"),
    ("def solution():\n    x = 0\n    for i in range(10 ** 9):\n        x += 1\n    return x", "iterations"),
    ("def solution():\n    x = 0\n    for i in range(9999):\n        for j in range(9999):\n            x += 1\n"
     "    return x", "steps"),
    ("def solution():\n    return [1, 2]", "List is not allowed"),
    ("def solution():\n    return 'seven'", "constant str is not allowed"),
    ("def solution():\n    return y", "name 'y' is used before"),
    ("def solution():\n    return 1 / 0", "division by zero"),
    ("def solution(x):\n    return x", "no arguments"),
    ("def solution():\n    return lambda: 1", "Lambda is not allowed"),
    ("def solution():\n    x = 1", "returns nothing"),
    ("def solution():\n    return 1 +", "not Python"),
    ("def solution():\n    return " + "1 + " * 3000 + "1", "characters"),
    ("def solution():\n    try:\n        return 1\n    except Exception:\n        return 2", "Try is not allowed"),
    ("def solution():\n    with open('f') as f:\n        return 1", "With is not allowed"),
    ("def solution():\n    round = 3\n    return round", "built-in"),
    ("@cache\ndef solution():\n    return 1", "decorators"),
])
def test_hostile_or_unbounded_programs_are_refused_quickly_naming_why(hostile, why):
    start = time.perf_counter()
    result = run_program(hostile)
    assert result.value is None and why in result.reason, result.reason
    assert time.perf_counter() - start < 1.0


def test_a_refused_program_has_no_answer_so_it_counts_wrong():
    assert pot_answer("    import os\n    return 4\n") is None
    assert pot_answer("    a = 2\n    return a * 2\n") == 4
    assert MAX_RANGE >= 1000  # GSM8K loops (days of a month, weeks of a year) fit


def test_the_program_format_stops_where_the_function_ends():
    body = "    x = 2\n    return x\n```\nThis returns 2."
    assert body[:pot_stop(body)] == "    x = 2\n    return x"
    assert pot_stop("    x = 2\n    return x\nprint(solution())")
    assert pot_stop("    x = 2\n") is None  # still going
    assert POT.tail("How many?").endswith("```python\ndef solution():\n")
