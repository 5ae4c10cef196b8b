"""A table's evaluation as a command, the same code in one process or split across many (pic.sharding):

    env ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=AVX2,STRICT ONEDNN_MAX_CPU_ISA=AVX2 \\
        torchrun --nproc_per_node 2 -m pic.evaluate gsm8k --profile paper --out build/eval/gsm8k

(or `accelerate launch --num_processes N -m pic.evaluate ...`; plain `python -m pic.evaluate ...` is one process).
The unit of work is the notebook's chunk of problems (chunks are fixed by the profile's chunk_size, never by the
number of processes, and seeded by their index), so the merged table is the one a single process writes. OUT
gets records.rank<r>.jsonl per process (rerun the same command to resume after a crash: recorded chunks are not
computed again) and the table as <table>.json, rows as notebook 31 prints them.

The environment pins one kernel path (pic.lm.numerics); it must be set before torch loads, hence on the command.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def gsm8k(profile: str, out: Path, seed: int = 0, n_problems: int | None = None, state=None) -> list[dict] | None:
    """Notebook 31's evaluation (Table 3, the paper-analog rows); rank 0 returns the table's rows (others None)."""
    from pic.sharding import distributed_state, finish, run_sharded
    from pic.tasks.gsm8k import analysis, load
    from pic.tasks.gsm8k.data import evaluation_subset, load_problems
    from pic.tasks.gsm8k.evaluation import Evaluation
    from pic.tasks.gsm8k.store import fingerprint

    state = state or distributed_state()
    setup = load(profile, "31_gsm8k", n_problems=n_problems)
    problems = evaluation_subset(load_problems("test")[0], setup.settings["n_problems"], seed)
    evaluation = Evaluation(setup.generator, setup.tokenizer, setup.finetuned, setup.energy, setup.run_settings, seed)
    size = setup.run_settings.chunk_size
    chunks = {f"chunk-{i // size:05d}": (i // size, problems[i:i + size]) for i in range(0, len(problems), size)}
    key = fingerprint(setup.run_settings, seed, profile, problems, setup.numerics, checkpoints=setup.checkpoints)
    done = run_sharded(list(chunks), lambda name: {"records": evaluation.run_chunk(chunks[name][1], chunks[name][0])},
                       out, key, state=state)
    rows = None
    if state.is_main_process:
        records = {(r["problem"], r["config"]): r for chunk in done.values() for r in chunk["records"]}
        n, rounds = setup.run_settings.n_samples, setup.run_settings.rounds
        rows = analysis.paper_analog_rows(records, problems, analysis.paper_analog_labels(n, rounds), seed)
        (out / "table3.json").write_text(json.dumps(rows, indent=2, sort_keys=True) + "\n")
    finish(state)
    return rows


TABLES = {"gsm8k": gsm8k}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pic.evaluate", description=__doc__.split("\n\n")[0])
    ap.add_argument("table", choices=sorted(TABLES))
    ap.add_argument("--profile", default="local", help="smoke, local or paper (default: local)")
    ap.add_argument("--out", type=Path, required=True, help="folder for the per-process records and the table")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-problems", type=int, default=None, help="GSM8K: problems evaluated (default: the profile's)")
    args = ap.parse_args(argv)
    rows = TABLES[args.table](args.profile, args.out, seed=args.seed, n_problems=args.n_problems)
    if rows is not None:
        print(f"{len(rows)} rows -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
