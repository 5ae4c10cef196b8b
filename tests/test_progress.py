"""Progress shows where the reader is and is never stored: lines with the time left in the runner's side file,
tqdm's text bar elsewhere, the notebook bar only in a live kernel that can draw it; pic never imports tqdm.auto,
whose import warns with a path of the machine in a kernel without ipywidgets."""
import ast
import re
from pathlib import Path

import pytest
import torch

from pic import progress as progress_module
from pic.progress import PROGRESS_FILE, progress
from pic.train import fit, step_batches

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^(?P<desc>[\w -]+): +\d+% \d+/(?P<total>\d+) \[\d\d:\d\d<(?P<left>\d\d:\d\d|\?), .*\]$")


@pytest.fixture
def side_file(tmp_path, monkeypatch):
    path = tmp_path / "progress.lines"
    monkeypatch.setenv(PROGRESS_FILE, str(path))
    monkeypatch.setattr(progress_module, "LINE_INTERVAL", 0.0)  # every step a line, so a test can see them
    return path


def test_under_the_runner_progress_is_whole_lines_with_the_time_left_and_nothing_on_the_console(side_file, capfd):
    for _ in progress(range(5), "counting"):
        pass
    lines = side_file.read_text().splitlines()
    assert lines and all(LINE.match(line) for line in lines), lines
    assert LINE.match(lines[-1]).group("total") == "5" and "100%" in lines[-1]
    out, err = capfd.readouterr()
    assert out == err == ""


def test_under_the_runner_a_loop_shorter_than_the_line_interval_writes_nothing(tmp_path, monkeypatch):
    path = tmp_path / "progress.lines"
    monkeypatch.setenv(PROGRESS_FILE, str(path))
    for _ in progress(range(3), "quick"):
        pass
    assert not path.exists()


def test_elsewhere_progress_is_tqdms_text_bar_on_stderr(monkeypatch, capfd):
    monkeypatch.delenv(PROGRESS_FILE, raising=False)
    for _ in progress(range(3), "counting", mininterval=0):
        pass
    assert "counting" in capfd.readouterr().err


def test_the_notebook_bar_only_in_a_live_kernel_that_can_draw_it(monkeypatch):
    monkeypatch.delenv(PROGRESS_FILE, raising=False)
    assert not progress_module._live_kernel_with_widgets()  # pytest is no kernel
    chosen = []

    class NotebookBar:
        def __init__(self, iterable, **kwargs):
            chosen.append(kwargs["desc"])

    import tqdm.notebook

    monkeypatch.setattr(progress_module, "_live_kernel_with_widgets", lambda: True)
    monkeypatch.setattr(tqdm.notebook, "tqdm", NotebookBar)
    progress(range(3), "in a kernel")
    assert chosen == ["in a kernel"]


def test_the_fit_loop_and_guided_denoising_report_through_it(side_file):
    from diffusers import DDPMScheduler

    from pic.optim.guided_denoising import DiffusionPrior, guided_denoise

    weight = torch.nn.Parameter(torch.zeros(3))
    target = torch.arange(3.0)
    fit([weight], lambda index: ((weight - target) ** 2).sum(), step_batches(8, 4, 6, torch.Generator().manual_seed(0)),
        lr=0.1, total=6, desc="toy fit")
    scheduler = DDPMScheduler(num_train_timesteps=100)
    prior = DiffusionPrior(lambda x, t: torch.zeros_like(x), scheduler)
    guided_denoise(prior, scheduler, torch.randn(4, 2), num_steps=5, progress=True)
    guided_denoise(prior, scheduler, torch.randn(4, 2), num_steps=5, progress=False)
    lines = side_file.read_text().splitlines()
    assert any(line.startswith("toy fit:") and "6/6" in line for line in lines), lines
    assert sum(line.startswith("denoising:") and "5/5" in line for line in lines) == 1, lines  # progress=False: none


def imported_names(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_pic_never_imports_tqdm_auto_and_progress_imports_nothing_of_pic():
    files = [ROOT / "pic" / "progress.py", ROOT / "pic" / "train.py", *sorted((ROOT / "pic" / "optim").rglob("*.py"))]
    for path in files:
        names = imported_names(path)
        assert not {n for n in names if n.startswith(("tqdm.auto", "tqdm.autonotebook"))}, path
    assert not {n for n in imported_names(ROOT / "pic" / "progress.py") if n.startswith("pic")}, \
        "pic.progress must stay a leaf that every layer can import"
