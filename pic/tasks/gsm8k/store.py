"""The resumable record store of the GSM8K evaluations and the fingerprint of what its records depend on.

Records are appended per chunk of problems to a JSONL file whose first line holds the run's fingerprint. A file
written under another fingerprint (other settings, seed, problems, code, library versions, numeric path or thread
count) is set aside as *.previous.jsonl, never mixed in. A run recomputes from scratch unless asked to resume an
interrupted run, and says how many records it reused when it does.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pic.sharding import append_lines, run_fingerprint


def problems_hash(problems) -> str:
    """sha256 (16 hex digits) of the problems' ids, question texts and reference solutions, in order."""
    h = hashlib.sha256()
    for p in problems:
        h.update(f"{p.id}\0{p.question}\0{p.solution}\0".encode())
    return h.hexdigest()[:16]


def fingerprint(settings, seed: int, profile: str, problems, numerics: dict, **extra) -> dict:
    """What stored records depend on: the settings, seed, profile, the problems' texts, the numeric path (dtype,
    pinned kernels, thread count: pic.lm.numerics), every file under pic/, the library versions, and `extra`
    (e.g. the checkpoints' sha256)."""
    return run_fingerprint(settings, seed, profile, problems=problems_hash(problems), numerics=dict(numerics),
                           **extra)


class ResultStore:
    """Per-problem records in a JSONL file, keyed by (problem id, configuration), under a fingerprint."""

    def __init__(self, path: str | Path, fingerprint: dict):
        self.path, self.fingerprint = Path(path), json.loads(json.dumps(fingerprint, sort_keys=True))
        self.reused = 0  # records found on disk by the last `load(resume=True)`

    def start(self, resume: bool) -> dict[tuple[str, str], dict]:
        """The records to continue from: those of an interrupted run with this fingerprint when `resume`, else
        none (an existing file is set aside first, so the run recomputes everything)."""
        if not resume and self.path.exists():
            self.path.replace(self.path.with_suffix(".previous.jsonl"))
        records = self.load()
        self.reused = len(records)
        return records

    def load(self) -> dict[tuple[str, str], dict]:
        if not self.path.exists():
            return {}
        lines = self.path.read_text(encoding="utf-8").splitlines()
        try:
            header = json.loads(lines[0]) if lines else {}
        except json.JSONDecodeError:
            header = {}
        if header.get("fingerprint") != self.fingerprint:
            self.path.replace(self.path.with_suffix(".previous.jsonl"))
            return {}
        records = {}
        for line in lines[1:]:
            try:
                r = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill mid-write; its chunk is redone
                continue
            records.setdefault((r["problem"], r["config"]), r)
        return records

    def append(self, records: list[dict]) -> None:
        header = [] if self.path.exists() else [json.dumps({"fingerprint": self.fingerprint}, sort_keys=True) + "\n"]
        append_lines(self.path, header + [json.dumps(r, sort_keys=True) + "\n" for r in records])


def run_chunks(run_chunk, configs: list[str], problems, store: ResultStore, *, chunk_size: int, resume: bool,
               on_chunk=None, log=print) -> dict[tuple[str, str], dict]:
    """Every chunk of problems not complete in the store is (re)run with `run_chunk(chunk, index) -> records` and
    appended; returns all records. With `resume`, complete chunks of an interrupted run are reused (and said so)."""
    import time

    done = store.start(resume)
    chunks = [problems[i:i + chunk_size] for i in range(0, len(problems), chunk_size)]
    reused = 0
    for index, chunk in enumerate(chunks):
        if all((p.id, c) in done for p in chunk for c in configs):
            reused += len(chunk) * len(configs)
            continue
        start = time.perf_counter()
        store.append(run_chunk(chunk, index))
        if log:
            log(f"chunk {index + 1}/{len(chunks)}: {len(chunk)} problems in {time.perf_counter() - start:.0f} s")
        if on_chunk is not None:
            on_chunk(index)
    if log and resume:
        log(f"resumed: reused {reused} records of {len(problems) * len(configs)} from {store.path.name}")
    return store.load()
