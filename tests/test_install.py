"""The two install paths agree, and CI runs exactly the README's test command."""
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_pins_what_pyproject_pins():
    env = (ROOT / "environment.yml").read_text()
    deps = pyproject()["project"]["dependencies"]
    torch_pin = next(d for d in deps if d.startswith("torch=="))
    assert f"- {torch_pin}" in env
    assert "- -e .[dev]" in env  # every other pin comes from pyproject itself
    py = re.search(r"- python=(\d+\.\d+)", env).group(1)
    lo, hi = re.search(r">=(\d+\.\d+),<(\d+\.\d+)", pyproject()["project"]["requires-python"]).groups()
    assert tuple(map(int, lo.split("."))) <= tuple(map(int, py.split("."))) < tuple(map(int, hi.split(".")))


def test_the_cpu_install_never_pulls_torchvision():
    deps = pyproject()["project"]["dependencies"] + pyproject()["project"]["optional-dependencies"]["dev"]
    assert not [d for d in deps if re.match(r"(torchvision|open.clip|timm)\b", d)]
    assert all("==" in d for d in deps), "pin every direct dependency exactly"


def test_ci_runs_the_readme_test_command_and_the_readme_starts_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```(?:bash|sh)?\n(.*?)```", readme, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.strip()]
    assert "make reproduce" in commands and "make test" in commands
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^\s*(exec\s+)?make test\s*$", ci, re.M)


def test_nodeps_packages_are_installed_by_the_makefile():
    makefile = (ROOT / "Makefile").read_text()
    assert "--no-deps --ignore-requires-python -r requirements-nodeps.txt" in makefile


def test_nbval_runs_every_experiment_notebook_and_no_training_notebook():
    # a training notebook under nbval would retrain and rewrite the committed checkpoints
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    dump = subprocess.run(["make", "-pn", "test"], cwd=ROOT, capture_output=True, text=True).stdout
    line = next(line for line in dump.splitlines() if line.startswith("EXPERIMENTS :="))
    listed = sorted(Path(p).name for p in line.split(":=", 1)[1].split())
    notebooks = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert listed == [n for n in notebooks if "_train_" not in n]
    assert "00_quickstart.ipynb" in listed
    # a notebook left out of nbval (too long for CI) is still executed by a test, at smoke
    line = next(line for line in dump.splitlines() if line.startswith("NBVAL_SKIP :="))
    skipped = [Path(p).stem for p in line.split(":=", 1)[1].split()]
    tests = "".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    assert all(re.search(rf'run_smoke\("{name}"', tests) for name in skipped), skipped
    assert len(skipped) <= 1, "nbval must cover the experiments: shorten a notebook before skipping another"
