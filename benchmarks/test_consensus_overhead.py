"""The consensus loop costs little over the raw model calls it makes (goal: ratio <= 1.10, measured in one run).

`make bench` runs this with timing; under `make test` (--benchmark-disable) it runs once as a smoke test.
"""
import time

import torch
from diffusers import DDIMScheduler, UNet2DModel

from pic import ComposedEnergy, Scorer
from pic.optim import DiffusionPrior, guided_denoise

GOAL = 1.10
STEPS, BATCH = 10, 16


class TinyClassifierEnergy(Scorer):
    """A small conv net's -log p(y|x): a stand-in for a noise-aware classifier with realistic cost."""

    def __init__(self, name, seed):
        torch.manual_seed(seed)
        self.name = name
        self.net = torch.nn.Sequential(torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.SiLU(),
                                       torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.SiLU(),
                                       torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(32, 10))

    def energy(self, x, **context):
        return -torch.log_softmax(self.net(x), dim=1)[:, 3]


def setup():
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=16, in_channels=1, out_channels=1, block_out_channels=(32, 64),
                       layers_per_block=1, down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=8).eval()
    scheduler = DDIMScheduler(num_train_timesteps=1000)
    scorers = [TinyClassifierEnergy("cls_a", 1), TinyClassifierEnergy("cls_b", 2)]
    x = torch.randn(BATCH, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    return unet, scheduler, scorers, x


def raw_loop(unet, scheduler, scorers, x):
    """The same model calls, written by hand: what the consensus loop must not add much to."""
    scheduler.set_timesteps(STEPS)
    for t in scheduler.timesteps:
        with torch.no_grad():
            eps = unet(x, t).sample
        grad = torch.zeros_like(x)
        for s in scorers:
            xg = x.detach().requires_grad_(True)
            grad += torch.autograd.grad(s.energy(xg).sum(), xg)[0]
        eps = eps + (1 - scheduler.alphas_cumprod[t]).sqrt() * grad
        x = scheduler.step(eps, t, x).prev_sample
    return x


def consensus_loop(unet, scheduler, scorers, x):
    def eps_fn(x, t, **_):
        with torch.no_grad():
            return unet(x, t).sample

    prior = DiffusionPrior(eps_fn, scheduler)
    return guided_denoise(prior, scheduler, x, ComposedEnergy(scorers), num_steps=STEPS).samples


def best_of(fn, args, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return min(times)


def test_consensus_loop_overhead_over_raw_model_calls(benchmark):
    args = setup()
    torch.testing.assert_close(consensus_loop(*args), raw_loop(*args))  # the same computation
    benchmark.pedantic(consensus_loop, args=args, rounds=3, iterations=1)
    if benchmark.disabled:
        return
    raw, pic = [], []
    for _ in range(5):  # interleaved, so machine noise hits both alike
        raw.append(best_of(raw_loop, args, 1))
        pic.append(best_of(consensus_loop, args, 1))
    ratio = min(pic) / min(raw)
    benchmark.extra_info.update(raw_seconds=min(raw), consensus_seconds=min(pic), overhead_ratio=ratio)
    print(f"\nconsensus loop {min(pic) * 1e3:.1f} ms vs raw calls {min(raw) * 1e3:.1f} ms: ratio {ratio:.3f} "
          f"(goal <= {GOAL})")
    assert ratio <= GOAL
