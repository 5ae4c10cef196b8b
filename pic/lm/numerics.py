"""One numeric path for language-model decoding, the same on every x86-64 CPU with AVX2.

Greedy and sampled generations follow argmax / inverse-CDF decisions, so a last-bit difference in a logit can
change every later token. By default torch picks its kernels from the CPU it runs on (bfloat16 only where the CPU
computes it natively, AVX-512 or AVX2 code in ATen, MKL and oneDNN), so the same notebook generates different
text on different machines. The pinned path is float32 with every kernel library held to its AVX2 code:

  ATEN_CPU_CAPABILITY=avx2   ATen's vectorised kernels (softmax, norms, activations, reductions)
  MKL_CBWR=AVX2,STRICT       MKL's conditional numerical reproducibility: float32 matmuls take the AVX2 branch
  ONEDNN_MAX_CPU_ISA=AVX2    oneDNN (any op routed there) stops at AVX2

plus a fixed thread count (reductions split by thread). These are read when torch loads, so they are set by the
caller before the first `import torch` (the notebooks' first cell; `PINNED` is what to set) and checked here.
"""
from __future__ import annotations

import os

PINNED = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2,STRICT", "ONEDNN_MAX_CPU_ISA": "AVX2"}
DTYPE = "float32"


class NumericPathError(RuntimeError):
    """The pinned kernel path is not in force; the message names the fix."""


def pinned_path(threads: int = 2) -> dict:
    """Check that the pinned path is in force, fix torch's thread count, and return the record that results and
    resume fingerprints carry: {"dtype", "threads", "cpu_capability", **PINNED}."""
    import torch

    wrong = {k: os.environ.get(k) for k, v in PINNED.items() if os.environ.get(k) != v}
    capability = torch.backends.cpu.get_cpu_capability()
    if wrong or capability.lower() != PINNED["ATEN_CPU_CAPABILITY"]:
        setting = " ".join(f"{k}={v}" for k, v in PINNED.items())
        raise NumericPathError(f"the pinned numeric path is not in force (environment {wrong}, torch kernels "
                               f"{capability}): set {setting} before torch is first imported (in a notebook: the "
                               f"first cell, `os.environ.update(pic_numerics)`; in a shell: `env {setting} ...`)")
    torch.set_num_threads(threads)
    return {"dtype": DTYPE, "threads": threads, "cpu_capability": capability, **PINNED}
