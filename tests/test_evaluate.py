"""A real table's evaluation (Table 3's, at smoke, the notebook's code path) split across processes under torchrun
gives the byte-identical table of one process, and a rank killed mid-run resumes without recomputing a record."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pic.lm.numerics import PINNED

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).with_name("torchrun")
PROBLEMS = 12  # three chunks of smoke's four problems


def command(out: Path, processes: int) -> list[str]:
    launcher = [str(TORCHRUN), "--nproc_per_node", str(processes)] if processes > 1 else [sys.executable]
    return launcher + ["-m", "pic.evaluate", "gsm8k", "--profile", "smoke", "--out", str(out),
                       "--n-problems", str(PROBLEMS)]


def environment() -> dict:
    return {**os.environ, **PINNED, "PYTHONPATH": str(ROOT)}


def run(out: Path, processes: int) -> subprocess.CompletedProcess:
    return subprocess.run(command(out, processes), env=environment(), cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def entries(out: Path) -> list[str]:
    return [json.loads(line)["item"] for f in sorted(out.glob("records.rank*.jsonl"))
            for line in f.read_text().splitlines() if line.endswith("}")]


pytestmark = pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside this Python")


def test_two_processes_give_the_table_of_one_and_a_killed_rank_resumes(tmp_path):
    one, two, killed = tmp_path / "one", tmp_path / "two", tmp_path / "killed"
    assert run(one, 1).returncode == 0
    result = run(two, 2)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (two / "table3.json").read_bytes() == (one / "table3.json").read_bytes()
    assert {p.name for p in two.glob("records.rank*.jsonl")} == {"records.rank0.jsonl", "records.rank1.jsonl"}
    assert sorted(entries(two)) == ["chunk-00000", "chunk-00001", "chunk-00002"]  # each chunk once

    # kill one rank as soon as the first chunk is recorded: torchrun then stops the other
    launcher = subprocess.Popen(command(killed, 2), env=environment(), cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 540
    while not entries(killed) and launcher.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    ranks = psutil.Process(launcher.pid).children()
    assert ranks and entries(killed), "the run ended before a rank could be killed"
    os.kill(ranks[-1].pid, signal.SIGKILL)
    assert launcher.wait(timeout=120) != 0
    recorded = entries(killed)
    assert 0 < len(recorded) < 3
    resumed = run(killed, 2)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"{len(recorded)} of 3 items reused" in resumed.stdout
    assert sorted(entries(killed)) == ["chunk-00000", "chunk-00001", "chunk-00002"]  # none recorded twice
    assert (killed / "table3.json").read_bytes() == (one / "table3.json").read_bytes()
