"""The calculator recomputes every step of a solution and never runs what a model wrote."""
import time
from pathlib import Path

import pytest

from pic.tasks.gsm8k.data import EXEMPLARS
from pic.tasks.gsm8k.calculator import (UnsafeExpression, accepted_prefix, calculator_energy, check_steps,
                                        evaluate_arithmetic, step_counts)


@pytest.mark.parametrize("expr, value", [("48/2", 24), ("16-3-4", 9), ("(3+4)*2", 14), ("36*.5", 18),
                                         ("$1,200 / 4", 300), ("3 x 4", 12), ("-2 + 5", 3), ("10%", 0.1),
                                         ("50*10%", 5), ("12.5% * 8", 1)])
def test_gsm8k_arithmetic_is_evaluated(expr, value):
    assert evaluate_arithmetic(expr) == pytest.approx(value)


@pytest.mark.parametrize("hostile, why", [
    ("9**9**9", "Pow is not allowed"), ("__import__('os').system('rm -rf /')", "Call is not allowed"),
    ("().__class__.__bases__", "Attribute is not allowed"), ("x + 1", "Name is not allowed"),
    ("2 // 3", "FloorDiv is not allowed"), ("1e308 * 10", "magnitude"), ("9" * 400, "characters"),
    ("(" * 100 + "1" + ")" * 100, "characters"), ("1/0", "division by zero"), ("lambda: 0", "Lambda is not allowed"),
    ("2 +", "not arithmetic"),
    ("", "characters"), ("[1, 2]", "List is not allowed"), ("10**10**10**10", "Pow is not allowed"),
])
def test_hostile_or_unbounded_expressions_are_refused_quickly_naming_why(hostile, why):
    start = time.perf_counter()
    with pytest.raises(UnsafeExpression, match=why):
        evaluate_arithmetic(hostile)
    assert time.perf_counter() - start < 0.1


def test_nothing_in_the_task_code_calls_eval_or_exec():
    import ast

    paths = list(Path(__file__).resolve().parents[1].glob("pic/tasks/gsm8k/*.py"))
    assert len(paths) > 5
    for path in paths:
        calls = {n.func.id for n in ast.walk(ast.parse(path.read_text()))
                 if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        assert not calls & {"eval", "exec", "compile"}, path


def test_every_annotation_and_inline_equation_is_a_step_and_wrong_ones_are_found():
    solution = (" Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\nShe makes 9 * 2 = $<<9*2=19>>19.\n"
                "Then 19 + 1 = 21 in all, and 3 x 4 = 12.\n#### 21")
    steps = check_steps(solution)
    assert [(s.expression.strip(), s.ok) for s in steps] == [("16-3-4", True), ("9*2", False), ("19 + 1", False),
                                                             ("3 x 4", True)]
    assert step_counts(solution) == (2, 2) and calculator_energy(solution) == pytest.approx(3 / 6 - 0.5)
    assert check_steps(" half is 1 - 1/3 = 2/3 of it")[0].ok  # a shown result may be a fraction


def test_a_solution_with_no_checkable_step_is_neutral_not_worst():
    nothing = " I think it is 7.\n#### 7"
    assert calculator_energy(nothing) == 0.0
    assert calculator_energy(" 3*4=<<3*4=12>>12\n#### 12") < 0.0 < calculator_energy(" 3*4=<<3*4=13>>13\n#### 13")


def test_percent_means_hundredths_and_a_shown_percentage_reads_either_way():
    assert [s.ok for s in check_steps(" 50*10% = 5 and 20/50*100 = 40% and 20/50 = 40% and 50*10% = 500")] == [
        True, True, True, False]


@pytest.mark.parametrize("text", [
    " " + " + ".join(map(str, range(1, 31))) + " = x",  # a 30-term chain with no well-formed result
    " " + " * ".join(["(2 + 3"] * 30) + " = y",
    ("She has 3 + 4 = 7 apples and 2 * 5 = 11 pears. " * 2200)[:100_000],  # a 100 kB repetitive generation
    "9" * 40_000 + " + 1 = 3\n" + "1 + " * 15_000,
    "<<2+2=4>>" * 11_000,
])
def test_degenerate_generations_are_scored_in_linear_time(text):
    """The old inline-equation regex backtracked exponentially: 2 s at 11 terms, x4 per further term."""
    start = time.perf_counter()
    calculator_energy(text)
    accepted_prefix(text)
    assert time.perf_counter() - start < 0.5  # the benchmark holds the 50 ms goal


def test_hostile_annotations_are_wrong_steps_not_crashes():
    steps = check_steps(" <<9**9**9=1>>1 and <<__import__('os').system('ls')=0>>0 then <<2+2=4>>4")
    assert [s.ok for s in steps] == [False, False, True]
    assert "Pow" in steps[0].reason and "Call" in steps[1].reason


def test_the_prompt_exemplars_pass_the_calculator():
    for question, solution in EXEMPLARS.values():
        assert step_counts(solution)[1] == 0


def test_the_accepted_prefix_stops_before_the_first_wrong_step_and_before_the_last_line():
    right = " A is 2*3=<<2*3=6>>6.\nB is 6+1=<<6+1=7>>7.\nC is 7*2=<<7*2=14>>14.\n#### 14"
    assert accepted_prefix(right) == " A is 2*3=<<2*3=6>>6.\nB is 6+1=<<6+1=7>>7.\n"
    wrong = " A is 2*3=<<2*3=6>>6.\nB is 6+1=<<6+1=8>>8.\nC is 8*2=<<8*2=16>>16.\n#### 16"
    assert accepted_prefix(wrong) == " A is 2*3=<<2*3=6>>6.\n"
    assert accepted_prefix(" B is 6+1=<<6+1=8>>8.\n#### 8") == ""
    assert accepted_prefix("") == ""
