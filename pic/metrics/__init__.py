"""Metrics that read samples, never models' internals."""
from pic.metrics.distribution import mmd_rbf, sliced_wasserstein

__all__ = ["mmd_rbf", "sliced_wasserstein"]
