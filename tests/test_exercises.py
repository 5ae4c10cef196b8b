"""Every experiment notebook ends with two or three exercises, each followed by one solution cell that the site
shows collapsed (myst-nb's `hide-cell` tag), that was executed with the notebook (so CI runs it) and that leaves
the notebook's tables, figures and results.json alone (it comes after `report.write()` and calls no report
method)."""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted(p for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb") if "_train_" not in p.name)
EXERCISE = re.compile(r"\*\*Exercise (\d+)\.\*\*")


def exercise_problems(nb) -> list[str]:
    """What is wrong with a notebook's Exercises section, each naming the cell."""
    cells = nb.cells
    start = next((i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith("## Exercises")),
                 None)
    if start is None:
        return ["no markdown cell starting with '## Exercises'"]
    problems = []
    writes = [i for i, c in enumerate(cells) if c.cell_type == "code" and "report.write()" in c.source]
    if not writes or writes[-1] > start:
        problems.append("the Exercises section must come after the cell that calls report.write()")
    section, numbers = cells[start + 1:], []
    if len(section) % 2:
        problems.append("the section must alternate exercise text and one solution cell")
    for k, (text, solution) in enumerate(zip(section[::2], section[1::2])):
        at = start + 1 + 2 * k
        match = EXERCISE.match(text.source) if text.cell_type == "markdown" else None
        if match is None:
            problems.append(f"cell {at}: expected markdown starting '**Exercise N.**'")
            continue
        numbers.append(int(match.group(1)))
        if solution.cell_type != "code" or "hide-cell" not in solution.metadata.get("tags", []):
            problems.append(f"cell {at + 1}: the solution must be a code cell tagged hide-cell")
            continue
        if re.search(r"\breport\.|^\s*def ", solution.source, re.M):
            problems.append(f"cell {at + 1}: a solution calls report.* or defines a function")
        if solution.execution_count is None or not solution.outputs:
            problems.append(f"cell {at + 1}: the solution was not executed with the notebook (no stored output)")
        if any(o.get("output_type") == "error" for o in solution.outputs):
            problems.append(f"cell {at + 1}: the solution stores an error")
    if numbers != list(range(1, len(numbers) + 1)) or not 2 <= len(numbers) <= 3:
        problems.append(f"exercises numbered {numbers}: want two or three, numbered from 1")
    return problems


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_an_experiment_notebook_ends_with_exercises_and_executed_hidden_solutions(path):
    assert exercise_problems(nbformat.read(path, as_version=4)) == []


def test_the_check_finds_a_missing_tag_an_unexecuted_solution_and_a_section_before_the_results():
    nb = nbformat.read(EXPERIMENTS[0], as_version=4)
    solutions = [c for c in nb.cells if "hide-cell" in c.metadata.get("tags", [])]
    solutions[0].metadata["tags"] = []
    solutions[1].outputs, solutions[1].execution_count = [], None
    found = exercise_problems(nb)
    assert any("tagged hide-cell" in p for p in found) and any("not executed" in p for p in found)
    nb.cells.append(nbformat.v4.new_code_cell("results_path = report.write()"))
    assert any("after the cell that calls report.write()" in p for p in exercise_problems(nb))
