"""Sharded evaluations give the table of one process, resume without computing an item twice, and never mix runs."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pic import sharding
from pic.sharding import RecordStore, ShardingError, run_sharded

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).with_name("torchrun")


class OneProcess:
    num_processes, process_index, is_main_process = 1, 0, True

    def split_between_processes(self, items):
        from contextlib import nullcontext
        return nullcontext(items)

    def wait_for_everyone(self):
        pass


def test_a_second_run_reuses_every_record_and_another_fingerprint_recomputes(tmp_path):
    calls = []

    def compute(item):
        calls.append(item)
        return {"double": 2 * int(item)}

    items = [str(i) for i in range(5)]
    first = run_sharded(items, compute, tmp_path, {"v": 1}, state=OneProcess(), log=None)
    again = run_sharded(items, compute, tmp_path, {"v": 1}, state=OneProcess(), log=None)
    assert first == again == {i: {"double": 2 * int(i)} for i in items} and calls == items
    other = run_sharded(items[:2], compute, tmp_path, {"v": 2}, state=OneProcess(), log=None)
    assert calls == items + items[:2] and list(other) == items[:2]
    store = RecordStore(tmp_path, {"v": 2})
    assert len(store.load()) == 2 and store.stale == 5  # the first run's records stay, never mixed in


def test_a_run_fingerprint_changes_with_its_settings_seed_profile_and_checkpoints_and_holds_the_code():
    def key(settings=None, seed=0, profile="smoke", pins=None):
        return sharding.fingerprint_key(sharding.run_fingerprint(settings or {"n": 1}, seed, profile,
                                                                 checkpoints=pins or {"a.safetensors": "1"}))

    others = [key(settings={"n": 2}), key(seed=1), key(profile="local"), key(pins={"a.safetensors": "2"})]
    assert len({key(), *others}) == 5 and key() == key()
    fingerprint = sharding.run_fingerprint({"n": 1}, 0, "smoke")
    assert fingerprint["code"] == sharding.code_hash()  # every file under pic/ (tests/test_gsm8k_resume.py)
    assert {"torch", "diffusers", "pybullet"} <= set(fingerprint["libraries"])


def test_a_line_cut_short_by_a_killed_process_is_computed_again(tmp_path):
    store = RecordStore(tmp_path, {"v": 1})
    store.append("a", {"x": 1})
    with open(store.path(0), "a") as f:
        f.write('{"run": "' + store.key + '", "item": "b", "rec')  # the process died while writing
    assert run_sharded(["a", "b"], lambda i: {"x": 2}, tmp_path, {"v": 1}, state=OneProcess(), log=None) == {
        "a": {"x": 1}, "b": {"x": 2}}


def test_a_world_that_is_not_the_launched_one_is_refused(monkeypatch):
    import accelerate

    class Alone:
        num_processes = 1

        def __init__(self, cpu=False):
            pass

    monkeypatch.setattr(accelerate, "PartialState", Alone)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ShardingError, match="sees a world of 1 process.*but 2 were launched"):
        sharding.distributed_state()


def launch(out: Path, n_items: int, processes: int, **env) -> subprocess.CompletedProcess:
    command = ([str(TORCHRUN), "--nproc_per_node", str(processes)] if processes > 1 else [sys.executable])
    (out / "calls").mkdir(parents=True, exist_ok=True)
    return subprocess.run(command + [str(ROOT / "tests" / "sharding_worker.py"), str(out), str(n_items)],
                          env={**os.environ, "PYTHONPATH": str(ROOT), "CALLS": str(out / "calls"), **env},
                          capture_output=True, text=True, timeout=240)


def calls_of(out: Path) -> list[str]:
    return [line for f in sorted((out / "calls").glob("*.log")) for line in f.read_text().split()]


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside this Python")
def test_two_processes_under_torchrun_give_the_byte_identical_table_of_one(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert launch(one, 9, 1).returncode == 0
    result = launch(two, 9, 2)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (two / "table.json").read_bytes() == (one / "table.json").read_bytes()
    assert sorted(calls_of(two)) == sorted(f"item-{i}" for i in range(9))  # each item once, split between ranks
    assert {p.name for p in (two / "records").iterdir()} == {"records.rank0.jsonl", "records.rank1.jsonl"}


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside this Python")
def test_a_rank_killed_mid_run_is_resumed_with_no_record_computed_twice(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert launch(one, 8, 1).returncode == 0
    crashed = launch(two, 8, 2, CRASH_ON="item-5")  # rank 1's second item
    assert crashed.returncode != 0
    before = RecordStore(two / "records", {"task": "toy", "n": 8}).load()
    assert "item-5" not in before
    resumed = launch(two, 8, 2)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert (two / "table.json").read_bytes() == (one / "table.json").read_bytes()
    calls = calls_of(two)
    assert all(calls.count(item) == 1 for item in before)  # what was recorded was never computed again
    entries = [json.loads(line)["item"] for f in (two / "records").glob("*.jsonl") for line in f.read_text().splitlines()]
    assert sorted(entries) == sorted(set(entries)) == sorted(f"item-{i}" for i in range(8))
