"""The folder tree shows the architecture, and imports keep to it:
notebooks -> pic.tasks.<task> -> pic.optim / pic.lm / pic.models -> pic.energy; no task imports another task."""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PIC = ROOT / "pic"
TASKS = sorted(p for p in (PIC / "tasks").iterdir() if p.is_dir() and (p / "__init__.py").exists())
# what each layer may not import (the core never imports a task; optimizers are model-agnostic)
FORBIDDEN = {
    "energy.py": ("pic.optim", "pic.lm", "pic.models", "pic.tasks", "pic.metrics", "pic.report", "pic.reproduce",
                  "pic.merging"),
    "optim": ("pic.lm", "pic.models", "pic.tasks", "pic.reproduce", "pic.merging"),
    "lm": ("pic.optim", "pic.tasks", "pic.reproduce", "pic.merging"),
    "models": ("pic.optim", "pic.lm", "pic.tasks", "pic.reproduce", "pic.merging"),
    "merging": ("pic.optim", "pic.lm", "pic.models", "pic.tasks", "pic.reproduce", "pic.metrics", "pic.report"),
    "metrics": ("pic.optim", "pic.lm", "pic.models", "pic.tasks", "pic.reproduce"),
    "stats.py": ("pic.optim", "pic.lm", "pic.models", "pic.tasks", "pic.reproduce"),
    "train.py": ("pic.optim", "pic.lm", "pic.models", "pic.tasks", "pic.reproduce"),
    "runtime.py": ("pic.optim", "pic.lm", "pic.models", "pic.tasks"),
    "assets.py": ("pic.optim", "pic.lm", "pic.models", "pic.tasks"),
    "report.py": ("pic.optim", "pic.lm", "pic.models", "pic.tasks"),
    "reproduce.py": ("pic.optim", "pic.lm", "pic.models", "pic.tasks"),
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def layer_files():
    for key, banned in FORBIDDEN.items():
        if key.endswith(".py"):
            paths = [PIC / key]
        else:
            paths = sorted((PIC / key).rglob("*.py")) if (PIC / key).exists() else []
        for path in paths:
            yield pytest.param(path, banned, id=str(path.relative_to(PIC)))


@pytest.mark.parametrize("path, banned", list(layer_files()))
def test_imports_point_down_the_layers(path, banned):
    bad = sorted(m for m in imports_of(path) if m.startswith(banned))
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}, against the layer order"


@pytest.mark.parametrize("task", TASKS, ids=lambda p: p.name)
def test_no_task_imports_another_task(task):
    others = tuple(f"pic.tasks.{t.name}" for t in TASKS if t != task)
    for path in task.rglob("*.py"):
        bad = sorted(m for m in imports_of(path) if m.startswith(others))
        assert not bad, f"{path.relative_to(ROOT)} imports another task: {bad}"


def test_tasks_holds_only_task_packages():
    loose = sorted(p.name for p in (PIC / "tasks").iterdir() if p.suffix == ".py" and p.name != "__init__.py")
    assert not loose, f"modules outside a task package: {loose}"


@pytest.mark.parametrize("task", TASKS, ids=lambda p: p.name)
def test_each_task_package_names_its_notebooks_table_and_optimizer(task):
    """One hop from the task package to 'the optimizer behind Table N': its docstring names them, and they exist."""
    doc = ast.get_docstring(ast.parse((task / "__init__.py").read_text())) or ""
    notebooks = re.findall(r"\b(\d\d_\w+)\.ipynb", doc)
    optimizers = re.findall(r"pic/optim/(\w+)\.py", doc)
    assert notebooks and optimizers, f"{task.name}'s docstring names no notebook or no optimizer file"
    for name in notebooks:
        assert (ROOT / "notebooks" / f"{name}.ipynb").exists(), f"{task.name} names missing notebook {name}"
    for name in optimizers:
        assert (PIC / "optim" / f"{name}.py").exists(), f"{task.name} names missing optimizer {name}.py"


def test_no_module_is_left_in_a_folder_whose_name_it_contradicts():
    """models/ holds only wrappers that two or more tables use: each is imported by at least two task packages."""
    for path in sorted((PIC / "models").glob("*.py")):
        if path.name == "__init__.py":
            continue
        module = f"pic.models.{path.stem}"
        users = {t.name for t in TASKS for f in t.rglob("*.py") if any(m == module for m in imports_of(f))}
        users |= {"lm" for f in (PIC / "lm").rglob("*.py") if module in imports_of(f)}
        via = {m.stem for m in (PIC / "models").glob("*.py") if module in imports_of(m)}
        assert len(users) >= 2 or via, f"{module} serves {sorted(users) or 'nothing'}: move it into that task"


def test_nothing_imports_torchvision():
    for path in PIC.rglob("*.py"):
        assert not any(m.split(".")[0] == "torchvision" for m in imports_of(path)), path
