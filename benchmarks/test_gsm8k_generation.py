"""Batched generation is at least 8x faster per token than one prompt at a time (SmolLM2-135M on CPU, the
evaluation's own decoding path: shared few-shot prefix, KV cache, the pinned float32 path; ratio measured in one run).

`make bench` runs this with timing; under `make test` (--benchmark-disable) it only runs a small batch.
"""
import time

import torch

from pic.lm import SharedPrefix, fast_cpu_inference, sample
from pic.lm import load_smollm2
from pic.tasks.gsm8k.data import EXEMPLARS, few_shot_prefix, question_prompt

GOAL = 8.0
ROWS, NEW_TOKENS = 64, 32  # 8 questions x 8 samples, a fixed number of new tokens per row (no stop rule)


def setup():
    model, tok = load_smollm2()
    fast_cpu_inference(model, "float32")  # the notebooks' one numeric path (pic.lm.numerics)
    prefix = SharedPrefix(model, tok, few_shot_prefix())
    questions = [q for q, _ in EXEMPLARS.values()] + ["Tom has 3 apples and buys 4 more. How many now?"] * 5
    return prefix, [prefix.tail_ids(question_prompt(q)) for q in questions]


def batched(prefix, tails):
    return sample(prefix, tails, n=ROWS // len(tails), temperature=0.7, max_new_tokens=NEW_TOKENS,
                  generator=torch.Generator().manual_seed(0), batch_size=ROWS)


def one_at_a_time(prefix, tails, rows):
    return [sample(prefix, [tails[i % len(tails)]], n=1, temperature=0.7, max_new_tokens=NEW_TOKENS,
                   generator=torch.Generator().manual_seed(i), batch_size=1) for i in range(rows)]


def test_batched_generation_is_8x_the_batch_1_tokens_per_second(benchmark):
    prefix, tails = setup()
    if benchmark.disabled:
        out = sample(prefix, tails[:2], n=2, temperature=0.7, max_new_tokens=4, generator=torch.Generator())
        assert [[len(c.tokens) for c in row] for row in out] == [[4, 4], [4, 4]]
        return
    benchmark.pedantic(batched, args=(prefix, tails), rounds=1, iterations=1)
    single_rows = 4
    start = time.perf_counter()
    singles = one_at_a_time(prefix, tails, single_rows)
    single_rate = sum(len(r[0][0].tokens) for r in singles) / (time.perf_counter() - start)
    start = time.perf_counter()
    many = batched(prefix, tails)
    batch_rate = sum(len(c.tokens) for row in many for c in row) / (time.perf_counter() - start)
    ratio = batch_rate / single_rate
    benchmark.extra_info.update(batched_tokens_per_s=batch_rate, batch_1_tokens_per_s=single_rate, ratio=ratio)
    print(f"\nbatched ({ROWS} rows) {batch_rate:.0f} tokens/s vs batch 1 {single_rate:.1f} tokens/s: "
          f"ratio {ratio:.1f} (goal >= {GOAL})")
    assert ratio >= GOAL
