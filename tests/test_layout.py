"""The package keeps one import direction: notebooks -> pic.tasks -> pic.optim / pic.models -> pic.energy."""
import ast
from pathlib import Path

import pytest

PIC = Path(__file__).resolve().parents[1] / "pic"
# what each layer may not import (the core never imports a task; optimizers and models do not import each other)
FORBIDDEN = {
    "energy.py": ("pic.optim", "pic.models", "pic.tasks", "pic.metrics", "pic.report", "pic.reproduce"),
    "optim": ("pic.models", "pic.tasks", "pic.reproduce"),
    "models": ("pic.optim", "pic.tasks", "pic.reproduce"),
    "metrics": ("pic.optim", "pic.models", "pic.tasks", "pic.reproduce"),
    "runtime.py": ("pic.optim", "pic.models", "pic.tasks"),
    "assets.py": ("pic.optim", "pic.models", "pic.tasks"),
    "report.py": ("pic.optim", "pic.models", "pic.tasks"),
    "reproduce.py": ("pic.optim", "pic.models", "pic.tasks"),
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
        for path in ([PIC / key] if key.endswith(".py") else sorted((PIC / key).glob("*.py"))):
            yield pytest.param(path, banned, id=str(path.relative_to(PIC)))


@pytest.mark.parametrize("path, banned", list(layer_files()))
def test_imports_point_down_the_layers(path, banned):
    bad = sorted(m for m in imports_of(path) if m.startswith(banned))
    assert not bad, f"{path.relative_to(PIC.parent)} imports {bad}, against the layer order"


def test_nothing_imports_torchvision():
    for path in PIC.rglob("*.py"):
        assert not any(m.split(".")[0] == "torchvision" for m in imports_of(path)), path
