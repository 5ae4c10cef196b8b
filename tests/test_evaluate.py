"""Every table's evaluation (at smoke, the notebook's code path) split across processes under torchrun gives the
byte-identical table and the same records as one process; a GSM8K rank killed mid-run resumes without recomputing a
record; the `paper` path of each table refuses offline, saying why."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pic.evaluate import TABLES
from pic.lm.numerics import PINNED

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).with_name("torchrun")
PROBLEMS = 12  # three chunks of smoke's four problems
GSM8K = ("gsm8k", "--n-problems", str(PROBLEMS))
# each table's command at smoke, sized for a short test: one thread per process (torchrun's default) in both runs
SMOKE = {"image": ("image", "--threads", "1"),  # 9 rows and the reference rows, 2 seeds
         "vqa": ("vqa", "--threads", "1", "--model-seeds", "0", "1", "--per-kind", "4"),  # 2 runs
         "robot": ("robot", "--threads", "1")}  # 2 episodes, every row on each


def command(out: Path, processes: int, table: tuple[str, ...] = GSM8K) -> list[str]:
    launcher = [str(TORCHRUN), "--nproc_per_node", str(processes)] if processes > 1 else [sys.executable]
    return launcher + ["-m", "pic.evaluate", *table, "--profile", "smoke", "--out", str(out)]


def environment() -> dict:
    return {**os.environ, **PINNED, "PYTHONPATH": str(ROOT)}


def run(out: Path, processes: int, table: tuple[str, ...] = GSM8K) -> subprocess.CompletedProcess:
    return subprocess.run(command(out, processes, table), env=environment(), cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def lines(out: Path) -> list[dict]:
    return [json.loads(line) for f in sorted(out.glob("records.rank*.jsonl"))
            for line in f.read_text().splitlines() if line.endswith("}")]


def entries(out: Path) -> list[str]:
    return [line["item"] for line in lines(out)]


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


@pytest.mark.parametrize("table", SMOKE)
def test_each_table_split_across_two_processes_gives_the_table_and_records_of_one(table, tmp_path):
    name = TABLES[table].file
    one, two = tmp_path / "one", tmp_path / "two"
    for out, processes in [(one, 1), (two, 2)]:
        result = run(out, processes, SMOKE[table])
        assert result.returncode == 0, result.stderr[-2000:]
    assert (two / name).read_bytes() == (one / name).read_bytes()
    assert all(f.read_text() for f in [two / "records.rank0.jsonl", two / "records.rank1.jsonl"])  # work was split
    assert sorted(entries(two)) == sorted(entries(one))  # each item once
    by_item = lambda out: {line["item"]: line["record"] for line in lines(out)}  # noqa: E731
    assert by_item(two) == by_item(one)  # seeds derive from the item: the same records, not only the same table
    runs = {line["run"] for line in lines(one) + lines(two)}
    assert len(runs) == 1  # one fingerprint whatever the process: a rerun of either would reuse every record


@pytest.mark.parametrize("table, needs", [("image", "Fashion-MNIST evaluation net"),
                                          ("vqa", "gpt2-medium"),
                                          ("robot", "openai/clip-vit-base-patch32")])
def test_offline_the_paper_path_of_each_table_refuses_at_once_saying_why(table, needs, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from pic.models.hub import HubUnavailableError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises((HubUnavailableError, ValueError)) as err:
        TABLES[table].run("paper", tmp_path, threads=None,  # leaves this process's torch threads alone
                          state=SimpleNamespace(num_processes=1, is_main_process=True))
    assert needs in str(err.value)
    assert not list(tmp_path.iterdir())  # nothing recorded


def test_an_option_of_another_table_is_refused_naming_it(tmp_path, capsys):
    from pic.evaluate import main

    with pytest.raises(SystemExit) as err:
        main(["gsm8k", "--n-episodes", "3", "--out", str(tmp_path)])
    assert err.value.code == 2 and "--n-episodes not an option of gsm8k" in capsys.readouterr().err
