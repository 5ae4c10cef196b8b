"""What a notebook leaves behind: figures (PDF + PNG), tables (CSV + JSON + a printed table) and results.json.

Outputs go to figures/<notebook>/ for the default `local` profile and to figures/<notebook>/<profile>/ for the
others, under $PIC_FIGURES_DIR when set (tests point it at a temporary folder). results.json is shaped
{"meta": {notebook, profile, seed, parameters, seconds, versions}, "tables": {name: [row, ...]}}.
"""
from __future__ import annotations

import json
import math
import os
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from pic.assets import ROOT

PROFILES = ("smoke", "local", "paper")
_VERSIONED = ("torch", "numpy", "scipy", "scikit-learn", "diffusers", "transformers", "papermill", "matplotlib")


class ProfileError(ValueError):
    """An unknown profile name."""


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ProfileError(f"unknown profile {profile!r}; choose one of {list(PROFILES)}")
    return profile


def profile_settings(profile: str, by_profile: dict[str, dict], **given) -> dict:
    """The profile's settings, with every `given` value that is not None taking precedence."""
    settings = dict(by_profile[check_profile(profile)])
    unknown = set(given) - set(settings)
    if unknown:
        raise KeyError(f"settings {sorted(unknown)} are not defined for the profiles")
    settings.update({k: v for k, v in given.items() if v is not None})
    return settings


def figures_root() -> Path:
    return Path(os.environ.get("PIC_FIGURES_DIR", ROOT / "figures"))


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def format_table(rows: list[dict], decimals: int = 3) -> str:
    """A fixed-width text table with floats rounded (and -0.0 shown as 0.0) so that re-runs print the same."""
    def fmt(v):
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            return "n/a"
        return f"{round(v, decimals) + 0.0:.{decimals}f}" if isinstance(v, float) else str(v)

    return pd.DataFrame([{k: fmt(v) for k, v in r.items()} for r in rows]).to_string(index=False)


class Report:
    """Collects one notebook run's figures and tables; `write()` saves results.json."""

    def __init__(self, notebook: str, profile: str, seed: int, parameters: dict[str, Any]):
        self.notebook, self.profile, self.seed = notebook, check_profile(profile), seed
        self.parameters = dict(parameters)
        self.dir = figures_root() / notebook / ("" if profile == "local" else profile)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tables: dict[str, list[dict]] = {}
        self._start = time.perf_counter()

    def __str__(self) -> str:
        where = self.dir.relative_to(ROOT) if self.dir.is_relative_to(ROOT) else self.dir
        return f"{self.notebook} profile={self.profile} seed={self.seed} -> {where}"

    def save_fig(self, fig, name: str) -> list[Path]:
        """Save `fig` as <name>.pdf and <name>.png with no timestamps in them, so re-runs give the same files."""
        paths = [self.dir / f"{name}.pdf", self.dir / f"{name}.png"]
        fig.savefig(paths[0], bbox_inches="tight", metadata={"CreationDate": None, "Creator": None, "Producer": None})
        fig.savefig(paths[1], bbox_inches="tight", dpi=150, metadata={"Software": None})
        return paths

    def table(self, name: str, rows: list[dict], decimals: int = 3) -> str:
        """Record a table (full precision to CSV/JSON), return it as rounded text for the notebook to print."""
        rows = [{k: _finite(v) for k, v in r.items()} for r in rows]
        self.tables[name] = rows
        pd.DataFrame(rows).to_csv(self.dir / f"{name}.csv", index=False)
        (self.dir / f"{name}.json").write_text(json.dumps(rows, indent=2) + "\n")
        return format_table(rows, decimals)

    def write(self) -> Path:
        meta = {"notebook": self.notebook, "profile": self.profile, "seed": self.seed,
                "parameters": self.parameters, "seconds": round(time.perf_counter() - self._start, 2),
                "versions": versions()}
        path = self.dir / "results.json"
        path.write_text(json.dumps({"meta": meta, "tables": self.tables}, indent=2) + "\n")
        return path
