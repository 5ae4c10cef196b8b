"""What is committed holds nothing of the machine that made it: no committed notebook stores a warning, a
traceback, a path of that machine (in an output or in its metadata) or the timestamps of its run, and no figure's
metadata (PNG text chunks, PDF) names a path either."""
from __future__ import annotations

import json
import re
import struct
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
FIGURES = sorted(p for p in (ROOT / "figures").rglob("*") if p.suffix in (".png", ".pdf"))
# the places a path of a machine shows: home folders, temporary files, an installed package or environment
MACHINE = [r"/root/", r"/home/", r"/tmp/", r"site-packages", r"\.venv\b", re.escape(ROOT.as_posix())]
MACHINE_PATH = re.compile("|".join(MACHINE))
# an absolute path in text (a URL's path, a relative path or one below a named root such as `<cache>/a/b` does not
# count)
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~>-])/(?:[\w.-]+/)+[\w.-]+")
WARNING = re.compile(r"\b[A-Z]\w*Warning\b")
RUN_TIMESTAMPS = ("start_time", "end_time", "duration")


def stored_problems(nb: dict) -> list[str]:
    """What a notebook stores that is of the machine that ran it, each naming the cell."""
    found = []
    record = nb.get("metadata", {}).get("papermill", {})
    for key in ("input_path", "output_path"):
        if str(record.get(key, "")).startswith("/"):
            found.append(f"metadata.papermill.{key} is the absolute path {record[key]!r}")
    found += [f"metadata.papermill.{key} (a timestamp of the run)" for key in RUN_TIMESTAMPS if key in record]
    for i, cell in enumerate(nb["cells"]):
        if {"papermill", "execution"} & set(cell.get("metadata", {})):
            found.append(f"cell {i}: timestamps of the run in its metadata")
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                found.append(f"cell {i}: a stored error {output.get('ename')}: {output.get('evalue')}")
            for line in _text(output).splitlines():
                if WARNING.search(line) or MACHINE_PATH.search(line) or ABSOLUTE_PATH.search(line):
                    found.append(f"cell {i}: {line[:160]!r}")
    return found


def _text(output: dict) -> str:
    text = output.get("text", "")
    data = output.get("data", {})
    text += "".join("".join(v) if isinstance(v, list) else str(v)
                    for k, v in data.items() if k.startswith("text/"))
    return "".join(text) if isinstance(text, list) else text


def png_text(path: Path) -> str:
    """The text chunks (tEXt, zTXt, iTXt) of a PNG file."""
    data, chunks, at = path.read_bytes(), [], 8
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + length]
        if kind == b"tEXt":
            chunks.append(body.replace(b"\0", b" ").decode("latin-1"))
        elif kind == b"zTXt":
            key, _, rest = body.partition(b"\0")
            chunks.append(key.decode("latin-1") + " " + zlib.decompress(rest[1:]).decode("latin-1"))
        elif kind == b"iTXt":
            chunks.append(body.replace(b"\0", b" ").decode("utf-8", "replace"))
        at += 12 + length
    return "\n".join(chunks)


def figure_metadata(path: Path) -> str:
    if path.suffix == ".png":
        return png_text(path)
    # a PDF's metadata (Info dictionary, XMP) is uncompressed text; its compressed streams are not searched
    return path.read_bytes().decode("latin-1")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_committed_notebook_stores_no_warning_path_or_timestamp_of_the_machine_that_ran_it(path):
    found = stored_problems(json.loads(path.read_text()))
    assert not found, f"{path.name} stores what is of the machine that ran it:\n" + "\n".join(found)


def test_no_figure_names_a_path_of_the_machine_that_made_it():
    assert FIGURES, "no committed figures found"
    bad = [f"{p.relative_to(ROOT)}: {m.group(0)!r}" for p in FIGURES
           if (m := MACHINE_PATH.search(figure_metadata(p)))]
    assert not bad, bad


def test_the_scan_finds_what_todays_notebooks_store():
    """The notebook check can fail: a cell storing tqdm's warning and a notebook with papermill's record of
    absolute paths and timestamps, as the committed notebooks had them, are each reported."""
    nb = {"metadata": {"papermill": {"input_path": "/work/x/notebooks/00_a.ipynb", "duration": 3.2}}, "cells": [
        {"cell_type": "code", "metadata": {"execution": {"iopub.status.idle": "2026-01-01T00:00:00Z"}}, "outputs": [
            {"output_type": "stream", "name": "stderr",
             "text": "/opt/env/lib/python3.11/site-packages/tqdm/auto.py:21: TqdmWarning: IProgress not found.\n"}]},
        {"cell_type": "code", "metadata": {}, "outputs": [
            {"output_type": "stream", "name": "stdout", "text": "report -> figures/00_a; see https://arxiv.org/abs/1\n"},
            {"output_type": "execute_result", "data": {"text/plain": "'/srv/data/cache'"}}]}]}
    found = "\n".join(stored_problems(nb))
    assert "input_path" in found and "duration" in found and "cell 0: timestamps" in found
    assert "TqdmWarning" in found and "/srv/data/cache" in found
    assert "figures/00_a" not in found  # a relative path or a URL is no machine path
    below_a_root = {"cells": [{"cell_type": "code", "metadata": {}, "outputs": [
        {"output_type": "stream", "name": "stdout", "text": "assembled: <pic.assets.cache_dir()>/qwen/model.gguf\n"}]}]}
    assert stored_problems(below_a_root) == []
