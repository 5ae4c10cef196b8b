"""A toy evaluation run by tests/test_sharding.py under torchrun: items -> records, each seeded by its item."""
import json
import os
import sys
from pathlib import Path

import torch

from pic.sharding import distributed_state, finish, run_sharded


def compute(item: str) -> dict:
    calls = Path(os.environ["CALLS"])
    with open(calls / f"rank{os.environ.get('RANK', '0')}.log", "a") as f:
        f.write(item + "\n")
    if item == os.environ.get("CRASH_ON"):
        os._exit(3)  # a process dying mid-item, before its record is written
    g = torch.Generator().manual_seed(int(item.split("-")[1]))  # the seed is the item's, never the rank's
    return {"value": float(torch.rand(3, generator=g).sum())}


if __name__ == "__main__":
    out, n = Path(sys.argv[1]), int(sys.argv[2])
    state = distributed_state()
    records = run_sharded([f"item-{i}" for i in range(n)], compute, out / "records", {"task": "toy", "n": n},
                          state=state, log=None)
    if state.is_main_process:
        (out / "table.json").write_text(json.dumps(records, sort_keys=True))
    finish(state)
