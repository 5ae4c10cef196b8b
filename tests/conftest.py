import os

import matplotlib
import pytest

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _figures_in_tmp(tmp_path, monkeypatch):
    """Nothing a test writes lands in the committed figures/ folder."""
    monkeypatch.setenv("PIC_FIGURES_DIR", str(tmp_path / "figures"))
    yield
