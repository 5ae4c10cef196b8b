"""Evaluations that scale past one process: items split between processes with accelerate, one JSONL of records
per process, resumable, merged into the same table whatever the number of processes.

The loop items -> compute -> record runs unchanged as one process in a notebook and as N processes under
`accelerate launch` or `torchrun`: the pending items (those without a record of this run) are split between the
processes (`PartialState.split_between_processes`), each rank appends only to its own file, and after
`wait_for_everyone` every rank reads all ranks' records. Seeds must derive from the item, never from the rank, so
the records do not depend on the number of processes; each record carries the run's fingerprint, so records of
runs with other settings or code are never mixed in (they stay on disk, counted as stale).

Traps guarded here: `PartialState()` with its default `cpu=False` on a machine without CUDA silently makes every
process a world of one that does all the work (the world size is checked against WORLD_SIZE); the process group is
destroyed at the end (teardown can abort otherwise). torchrun sets one thread per process: with 2 processes on 2
cores that is what you want; say so when you compare timings.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, is_dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

PACKAGE = Path(__file__).resolve().parent  # pic/
LIBRARIES = ("torch", "transformers", "tokenizers", "safetensors", "gguf", "peft", "numpy", "scipy", "scikit-learn",
             "sentence-transformers", "diffusers", "pybullet")


class ShardingError(RuntimeError):
    """A world that is not the one launched, or records missing after every process finished."""


def code_hash(root: Path = PACKAGE) -> str:
    """sha256 (16 hex digits) over every file under pic/ (path and bytes; caches excluded): the energy, the
    optimizers, the loaders and every task's code."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def library_versions() -> dict[str, str]:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def run_fingerprint(settings, seed: int, profile: str, **extra) -> dict:
    """What a run's records depend on: its settings, seed and profile, every file under pic/, the library
    versions, and `extra` (the checkpoints' sha256 pins, the data, the numeric path: threads, kernels)."""
    return {"settings": asdict(settings) if is_dataclass(settings) else dict(settings), "seed": seed,
            "profile": profile, "code": code_hash(), "libraries": library_versions(), **extra}


def numeric_path() -> dict:
    """The numeric path of this process that results depend on and a fingerprint records: torch's thread count
    (reductions split by thread), its CPU kernels and the kernel-pinning environment (pic.lm.numerics.PINNED)."""
    from pic.lm.numerics import PINNED

    return {"threads": torch.get_num_threads(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            **{k: os.environ.get(k) for k in PINNED}}


def fingerprint_key(fingerprint: Mapping[str, Any]) -> str:
    """A short hash of what the records depend on (settings, seed, code, data)."""
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()[:16]


class RecordStore:
    """Records of one run, one JSONL file per rank under `folder`: {"run": key, "item": id, "record": {...}}."""

    def __init__(self, folder: str | Path, fingerprint: Mapping[str, Any], rank: int = 0):
        self.folder, self.rank, self.key = Path(folder), rank, fingerprint_key(fingerprint)
        self.stale = 0  # records of other runs seen by the last `load`

    def path(self, rank: int) -> Path:
        return self.folder / f"records.rank{rank}.jsonl"

    def load(self) -> dict[str, dict]:
        """item id -> record, from every rank's file; records of other runs are skipped and counted in `stale`,
        and a last line cut short by a killed process is ignored (its item is computed again)."""
        records, self.stale = {}, 0
        for path in sorted(self.folder.glob("records.rank*.jsonl")):
            for line in path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a partial line: only the last line of a killed writer can be one
                if entry.get("run") != self.key:
                    self.stale += 1
                elif entry["item"] in records and records[entry["item"]] != entry["record"]:
                    raise ShardingError(f"item {entry['item']!r} has two different records in {self.folder}")
                else:
                    records[entry["item"]] = entry["record"]
        return records

    def append(self, item: str, record: Mapping[str, Any]) -> None:
        append_lines(self.path(self.rank), [json.dumps({"run": self.key, "item": item, "record": record},
                                                       sort_keys=True) + "\n"])


def append_lines(path: Path, lines: Sequence[str]) -> None:
    """Append whole lines to a JSONL file and fsync them; a last line cut short by a killed writer is ended first,
    so a new record never continues it (readers skip the cut line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(lines)
    with open(path, "ab+") as f:
        if f.tell():
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                text = "\n" + text
        f.write(text.encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())


def distributed_state():
    """accelerate's PartialState for this process, on the CPU when there is no CUDA, checked against the world
    torchrun / accelerate launched (WORLD_SIZE)."""
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if state.num_processes != launched:
        raise ShardingError(f"this process sees a world of {state.num_processes} process(es) but {launched} were "
                            "launched (WORLD_SIZE): each would do all the work. On a machine without CUDA the state "
                            "must be created with cpu=True (distributed_state does)")
    return state


def run_sharded(items: Sequence[str], compute: Callable[[str], Mapping[str, Any]], folder: str | Path,
                fingerprint: Mapping[str, Any], *, state=None, log: Callable[[str], None] | None = print) -> dict:
    """{item: record} for every item, computing (split between the processes) only those without a record of
    this run. Every rank returns the same merged records, in the order of `items`."""
    if len(set(items)) != len(items):
        raise ValueError("item ids must be distinct")
    state = state or distributed_state()
    store = RecordStore(folder, fingerprint, state.process_index)
    done = store.load()
    pending = [i for i in items if i not in done]
    if log and state.is_main_process:
        log(f"{len(items) - len(pending)} of {len(items)} items reused from {folder}"
            + (f" ({store.stale} records of other runs ignored)" if store.stale else "")
            + f"; {len(pending)} to compute on {state.num_processes} process(es)")
    state.wait_for_everyone()  # every rank splits the same pending list: none may append before all have read
    with state.split_between_processes(pending) as mine:
        for item in mine:
            store.append(item, dict(compute(item)))
    state.wait_for_everyone()
    records = store.load()
    missing = [i for i in items if i not in records]
    if missing:
        raise ShardingError(f"{len(missing)} items have no record after every process finished, e.g. {missing[:3]}")
    return {i: records[i] for i in items}


def finish(state) -> None:
    """Tear the process group down (a launched world only)."""
    if state.num_processes > 1:
        state.destroy_process_group()
