"""Progress of a long loop, shown where the reader is, and never stored in an executed notebook.

`progress(iterable, desc, total)` returns a tqdm bar of one of three kinds:
- under `python -m pic.reproduce` (the runner names a file in $PIC_PROGRESS_FILE): plain lines with the time left
  ("denoising:  40% 20/50 [00:10<00:15, 2.00it/s]"), appended to that file at most every 10 s, which the runner
  streams to its terminal; the notebook's own outputs get nothing, so the committed notebook stays clean;
- in a live Jupyter kernel with ipywidgets: tqdm's notebook bar;
- anywhere else (a script, pytest, a kernel without ipywidgets): tqdm's text bar on stderr.
Only the tqdm submodules are imported, never tqdm.auto, whose import warns (with a path of this machine) in a
kernel without ipywidgets. This module imports nothing from pic, so every layer may use it.
"""
from __future__ import annotations

import os
import sys
from typing import Iterable

from tqdm import std

PROGRESS_FILE = "PIC_PROGRESS_FILE"  # set by the runner: where progress lines go instead of the notebook
LINE_INTERVAL = 10.0  # seconds between two lines of one bar in that file; shorter loops write nothing
_LINE_FORMAT = "{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


def progress(iterable: Iterable | None = None, desc: str | None = None, total: int | None = None, *,
             disable: bool = False, mininterval: float = 0.1, **tqdm_kwargs) -> std.tqdm:
    """A tqdm bar over `iterable` labelled `desc` (total: its length when len() cannot tell); disable: no output.
    Extra keywords go to tqdm. Use it as tqdm: iterate over it, or call .update() / .set_postfix()."""
    lines = os.environ.get(PROGRESS_FILE)
    if lines:
        return std.tqdm(iterable, desc=desc, total=total, disable=disable, file=_Lines(lines), ascii=True,
                        bar_format=_LINE_FORMAT, mininterval=max(mininterval, LINE_INTERVAL),
                        delay=LINE_INTERVAL, **tqdm_kwargs)
    if _live_kernel_with_widgets():
        from tqdm import notebook

        return notebook.tqdm(iterable, desc=desc, total=total, disable=disable, mininterval=mininterval,
                             **tqdm_kwargs)
    return std.tqdm(iterable, desc=desc, total=total, disable=disable, mininterval=mininterval, **tqdm_kwargs)


def _live_kernel_with_widgets() -> bool:
    """True inside a Jupyter kernel (not a terminal IPython) that can draw ipywidgets: tqdm.autonotebook's test."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None or "IPKernelApp" not in shell.config:
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


class _Lines:
    """A file-like target for tqdm that appends each refresh as one whole line to `path` (tqdm writes '\\r' + the
    bar + padding; a reader tailing the file wants lines)."""

    encoding = "utf-8"

    def __init__(self, path: str):
        self.path = path

    def write(self, text: str) -> None:
        lines = [part.strip() for part in text.split("\r")]
        lines = [line for line in lines if line]
        if lines:
            with open(self.path, "a", encoding="utf-8") as f:  # opened per line: a bar may outlive its cell
                f.write("\n".join(lines) + "\n")

    def flush(self) -> None:
        pass
