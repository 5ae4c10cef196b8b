"""What a notebook leaves behind: figures (PDF + PNG), tables (CSV + JSON + a printed table), the claims it checks
(one HOLDS/FAILS printer) and results.json.

Outputs go to figures/<notebook>/ for the committed run (the `local` profile with every parameter at its
default), to figures/<notebook>/<profile>/ for the other profiles, and to figures/<notebook>/runs/<profile>-<the
changed parameters>/ for any other run, so that trying another seed never overwrites the committed figures; all
under $PIC_FIGURES_DIR when set (tests point it at a temporary folder). results.json is shaped
{"meta": {notebook, profile, seed, parameters, overrides, seconds, threads, dtype, versions},
 "tables": {name: [row, ...]}}.
"""
from __future__ import annotations

import ast
import hashlib
import json
import math
import os
import platform
import re
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from pic.assets import ROOT

PROFILES = ("smoke", "local", "paper")
# parameters that do not change what a run's outputs are: the profile (it has its own folder) and `retrain` (a
# training notebook either trains its checkpoints or loads the committed ones; its outputs are the committed ones)
SAME_OUTPUTS = ("profile", "retrain")
# where `make bench` writes the framework's overhead over raw model calls, per optimizer family (one run), for the
# ablation notebook to read
OVERHEAD_FILE = ROOT / "build" / "bench" / "overhead.json"
OVERHEAD_GOAL = 1.05
_VERSIONED = ("torch", "numpy", "scipy", "scikit-learn", "diffusers", "transformers", "papermill", "matplotlib")


def write_overhead(rows: list[dict], path: Path = OVERHEAD_FILE) -> Path:
    """Save one benchmark run's overhead rows ({family, raw_seconds, consensus_seconds, ratio}) with the machine's
    threads and the time of the run."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"measured": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "threads": torch.get_num_threads(),
            "goal": OVERHEAD_GOAL}
    path.write_text(json.dumps({"meta": meta, "families": rows}, indent=2) + "\n")
    return path


def read_overhead(path: Path = OVERHEAD_FILE) -> tuple[list[dict], str]:
    """(rows, note) of the last `make bench` run; no rows and a note saying how to make them when it never ran."""
    if not path.exists():
        return [], f"no benchmark results at {path}: run `make bench` to measure the overhead ratios"
    data = json.loads(path.read_text())
    return data["families"], (f"measured by `make bench` on {data['meta']['measured']}, "
                              f"{data['meta']['threads']} threads; goal <= {data['meta']['goal']}")


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


def notebook_parameters(notebook: str) -> dict[str, Any]:
    """name -> default of each parameter declared in notebooks/<notebook>.ipynb's cell tagged `parameters`
    (literal defaults; an expression that is not a literal is kept as its source text)."""
    import nbformat

    path = ROOT / "notebooks" / f"{notebook}.ipynb"
    cells = [c for c in nbformat.read(path, as_version=4).cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise ValueError(f"{path.name} has no cell tagged `parameters`")
    out = {}
    for node in ast.parse(cells[0].source).body:
        # `n = 3` and the annotated `n: int = None` (papermill reads the annotation as the parameter's type)
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target = node.target
        else:
            continue
        if isinstance(target, ast.Name):
            try:
                out[target.id] = ast.literal_eval(node.value)
            except ValueError:
                out[target.id] = ast.unparse(node.value)
    return out


def run_folder(profile: str, overrides: Mapping[str, Any]) -> str:
    """The sub-folder of a run under figures/<notebook>/: '' for the committed run, the profile's name for another
    profile at its defaults, runs/<profile>-<changed parameters> otherwise (long names shortened by a hash)."""
    if not overrides:
        return "" if profile == "local" else profile
    slug = "_".join(f"{k}={v}" for k, v in sorted(overrides.items()))
    slug = re.sub(r"[^A-Za-z0-9=._-]+", "-", slug).strip("-")
    if len(slug) > 60:
        slug = slug[:48] + "-" + hashlib.sha256(slug.encode()).hexdigest()[:8]
    return f"runs/{profile}-{slug}"


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


def table_json(rows: Sequence[Mapping[str, Any]]) -> str:
    """A table as its <name>.json holds it: the rows in order, full precision, non-finite numbers as null."""
    return json.dumps([{k: _finite(v) for k, v in r.items()} for r in rows], indent=2) + "\n"


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _fmt(v, decimals: int) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{round(v, decimals) + 0.0:.{decimals}f}" if isinstance(v, float) else str(v)


def format_table(rows: list[dict], decimals: int = 3) -> str:
    """A fixed-width text table with floats rounded (and -0.0 shown as 0.0) so that re-runs print the same."""
    return pd.DataFrame([{k: _fmt(v, decimals) for k, v in r.items()} for r in rows]).to_string(index=False)


class Report:
    """Collects one notebook run's figures, tables and claims; `write()` saves results.json.

    overrides: the parameters whose value differs from the notebook's declared default (`Report.start` finds
    them); they choose the output folder (see the module's docstring). `meta` takes what else the run records
    (e.g. the numeric dtype).
    """

    def __init__(self, notebook: str, profile: str, seed: int, parameters: dict[str, Any],
                 overrides: Mapping[str, Any] | None = None):
        self.notebook, self.profile, self.seed = notebook, check_profile(profile), seed
        self.parameters, self.overrides = dict(parameters), dict(overrides or {})
        self.dir = figures_root() / notebook / run_folder(profile, self.overrides)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tables: dict[str, list[dict]] = {}
        self.meta: dict[str, Any] = {}
        self._start = time.perf_counter()

    @classmethod
    def start(cls, notebook: str, namespace: Mapping[str, Any], **settings) -> Report:
        """The report of a notebook run: its declared parameters read from `namespace` (the notebook's globals),
        compared with their defaults; `settings` (e.g. the profile's resolved settings) are recorded beside them."""
        declared = notebook_parameters(notebook)
        missing = sorted(k for k in declared if k not in namespace)
        if missing or "profile" not in declared or "seed" not in declared:
            raise ValueError(f"{notebook}: the `parameters` cell must declare `profile` and `seed`, and all of "
                             f"{sorted(declared)} must be defined before Report.start (missing: {missing})")
        values = {k: namespace[k] for k in declared}
        overrides = {k: v for k, v in values.items() if k not in SAME_OUTPUTS and v != declared[k]}
        return cls(notebook, values["profile"], values["seed"], {**values, **settings}, overrides)

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
        (self.dir / f"{name}.json").write_text(table_json(rows))
        return format_table(rows, decimals)

    def claims(self, claims: Mapping[str, bool] | Sequence[Mapping[str, Any]], name: str = "claims",
               decimals: int = 3) -> str:
        """Record the claims a notebook checks, each {"claim": text, "holds": bool, **numbers behind it} (or a
        mapping text -> holds), and return them as lines 'HOLDS  <claim>' / 'FAILS  <claim>', with their numbers."""
        rows = ([{"claim": k, "holds": bool(v)} for k, v in claims.items()] if isinstance(claims, Mapping)
                else [dict(r, holds=bool(r["holds"])) for r in claims])
        self.table(name, rows)
        lines = []
        for r in rows:
            numbers = ", ".join(f"{k} {_fmt(v, decimals)}" for k, v in r.items() if k not in ("claim", "holds"))
            lines.append(("HOLDS  " if r["holds"] else "FAILS  ") + r["claim"] + (f"  ({numbers})" if numbers else ""))
        return "\n".join(lines)

    def write(self) -> Path:
        import torch

        meta = {"notebook": self.notebook, "profile": self.profile, "seed": self.seed,
                "parameters": self.parameters, "overrides": self.overrides,
                "seconds": round(time.perf_counter() - self._start, 2), "threads": torch.get_num_threads(),
                "dtype": str(torch.get_default_dtype()).removeprefix("torch."), **self.meta, "versions": versions()}
        path = self.dir / "results.json"
        path.write_text(json.dumps({"meta": meta, "tables": self.tables}, indent=2) + "\n")
        return path
