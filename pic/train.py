"""The one fit loop every training notebook uses: AdamW over index batches, a learning-rate schedule, optional
gradient clipping, a hook after each step (EMA), a log of the mean loss per window (a number of steps, or an epoch).

What differs between the models is data, not code: which batches (`step_batches`: a number of steps over
successive permutations; `epoch_batches`: whole passes; `stream_batches`: a Python-random stream across passes),
which schedule (`warmup_cosine`, `one_cycle`, `warmup_then_cosine`) and the loss of a batch of indices.
Deterministic for a given seed, thread count and machine; the generator that orders the batches is the caller's,
so a loss that draws noise from the same generator interleaves with the batch order exactly as written.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

import torch

from pic.progress import progress

Schedule = Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler]


@dataclass(frozen=True)
class Batch:
    index: torch.Tensor  # example indices of the batch
    epoch: int  # which pass over the data it belongs to


@dataclass
class FitLog:
    """losses: mean loss (weighted by batch size) of each logging window; window: 'epoch' or a number of steps."""

    losses: list[float] = field(default_factory=list)
    window: str | int = "epoch"
    steps: int = 0
    examples: int = 0
    seconds: float = 0.0

    def final(self) -> float:
        return self.losses[-1] if self.losses else float("nan")


def step_batches(n: int, batch_size: int, steps: int, generator: torch.Generator) -> Iterator[Batch]:
    """`steps` batches from successive random permutations of range(n); a permutation's tail shorter than a batch
    is dropped (every batch has batch_size examples)."""
    if batch_size > n:
        raise ValueError(f"batch_size {batch_size} exceeds the {n} examples")
    done, epoch, perm, pos = 0, 0, torch.randperm(n, generator=generator), 0
    while done < steps:
        if pos + batch_size > n:
            perm, pos, epoch = torch.randperm(n, generator=generator), 0, epoch + 1
        yield Batch(perm[pos:pos + batch_size], epoch)
        pos, done = pos + batch_size, done + 1


def epoch_batches(n: int, batch_size: int, epochs: int, generator: torch.Generator) -> Iterator[Batch]:
    """`epochs` passes over a fresh permutation of range(n) each, the last batch of a pass possibly shorter."""
    for epoch in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            yield Batch(order[start:start + batch_size], epoch)


def stream_batches(n: int, batch_size: int, steps: int, rng: random.Random) -> Iterator[Batch]:
    """`steps` batches cut from a stream of Python-random shuffles of range(n), batches running across passes."""
    order: list[int] = []
    epoch = -1
    for _ in range(steps):
        while len(order) < batch_size:
            more = list(range(n))
            rng.shuffle(more)
            order += more
            epoch += 1
        chunk, order = order[:batch_size], order[batch_size:]
        yield Batch(torch.tensor(chunk), epoch)


def batches_per_epoch(n: int, batch_size: int) -> int:
    return (n + batch_size - 1) // batch_size


def warmup_cosine(steps: int, warmup: int, floor: float = 0.1) -> Schedule:
    """Linear warm-up over `warmup` steps, then cosine decay to `floor` times the learning rate."""
    def factor(i):
        if i < warmup:
            return (i + 1) / warmup
        return floor + (1 - floor) / 2 * (1 + math.cos(math.pi * (i - warmup) / max(1, steps - warmup)))
    return lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, factor)


def warmup_then_cosine(steps: int, warmup: int) -> Schedule:
    """A linear warm-up ramp multiplied into a cosine decay to 0 that starts at step 0 (the LoRA recipe)."""
    return lambda opt: torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))


def one_cycle(total_steps: int, pct_start: float = 0.3) -> Schedule:
    """torch's one-cycle schedule (the learning rate passed to `fit` is its maximum)."""
    return lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=opt.defaults["lr"], total_steps=total_steps,
                                                           pct_start=pct_start)


def fit(params: Sequence[torch.nn.Parameter] | torch.nn.Module, batch_loss: Callable[[torch.Tensor], torch.Tensor],
        batches: Iterable[Batch], *, lr: float, schedule: Schedule | None = None, weight_decay: float = 0.0,
        clip_grad: float | None = None, after_step: Callable[[], None] | None = None, seed: int | None = None,
        log_every: int | str = "epoch", total: int | None = None, desc: str | None = None,
        log: Callable[[str], None] | None = None) -> FitLog:
    """Minimise batch_loss(index) over `batches` with AdamW; returns the loss log.

    params: the parameters to train, or a module (its parameters that require grad; it is put in train mode and
    back in eval mode at the end). after_step: called after each update (e.g. an EMA of the weights).
    seed: seeds torch's global generator first (dropout) when given. log_every: "epoch" or a number of steps.
    desc: a progress bar with that label (total: its length); log: called with one line per window.
    """
    module = params if isinstance(params, torch.nn.Module) else None
    params = [p for p in (module.parameters() if module is not None else params) if p.requires_grad]
    if not params:
        raise ValueError("fit got no trainable parameters (all have requires_grad=False)")
    if seed is not None:
        torch.manual_seed(seed)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = schedule(opt) if schedule is not None else None
    out, window_sum, window_n, window_id = FitLog(window=log_every), 0.0, 0, None
    start = time.perf_counter()

    def close_window():
        out.losses.append(window_sum / window_n)
        if log:
            label = f"epoch {window_id + 1}" if log_every == "epoch" else f"step {out.steps}"
            log(f"{desc or 'fit'} {label}: loss {out.losses[-1]:.4f}, {time.perf_counter() - start:.0f} s")

    if module is not None:
        module.train()
    bar = progress(batches, desc, total, disable=desc is None, mininterval=5)
    for batch in bar:
        key = batch.epoch if log_every == "epoch" else out.steps // log_every
        if window_id is not None and key != window_id and window_n:
            close_window()
            window_sum, window_n = 0.0, 0
        window_id = key
        loss = batch_loss(batch.index)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip_grad is not None:
            torch.nn.utils.clip_grad_norm_(params, clip_grad)
        opt.step()
        if sched is not None:
            sched.step()
        if after_step is not None:
            after_step()
        window_sum += float(loss.detach()) * len(batch.index)
        window_n += len(batch.index)
        out.steps += 1
        out.examples += len(batch.index)
        if desc is not None and out.steps % 50 == 0:
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
    if window_n:
        close_window()
    if module is not None:
        module.eval()
    out.seconds = time.perf_counter() - start
    return out
