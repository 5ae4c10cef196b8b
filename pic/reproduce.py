"""Run the numbered notebooks with papermill, in order: `python -m pic.reproduce [NN ...] [--profile P] [-p k=v]`.

At the default profile (`local`) each notebook is executed in place, so the committed notebooks hold the outputs
of the last run; other profiles write their executed copies under build/<profile>/. Training notebooks
(notebooks/NN_train_*.ipynb) produce the committed checkpoints and run only with --train. Parameters are checked
against each notebook's `parameters` cell before anything runs; a failed notebook is kept under build/failed/
and named, with its cell, in the error.
"""
from __future__ import annotations

import argparse
import ast
import os
import shutil
import sys
import time
from pathlib import Path

from pic.assets import ROOT
from pic.report import PROFILES

NOTEBOOKS = ROOT / "notebooks"
BUILD = ROOT / "build"


class ParameterError(ValueError):
    """An override that the notebook's `parameters` cell does not declare, or of the wrong type."""


def is_training(path: Path) -> bool:
    return "_train_" in path.name


def numbered_notebooks(training: bool = False) -> list[Path]:
    found = sorted(p for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    return [p for p in found if is_training(p) == training]


def select(keys: list[str], training: bool) -> list[Path]:
    """Notebooks whose number or name starts with one of `keys` (all of the kind when none)."""
    pool = numbered_notebooks(training) if not keys else numbered_notebooks(False) + numbered_notebooks(True)
    if not keys:
        return pool
    chosen = [p for p in pool if any(p.name.startswith(k) or p.stem == k for k in keys)]
    missing = [k for k in keys if not any(p.name.startswith(k) or p.stem == k for p in pool)]
    if missing:
        raise SystemExit(f"no notebook matches {missing}; have: {[p.stem for p in pool]}")
    return sorted(chosen)


def declared_parameters(path: Path) -> dict[str, dict]:
    """name -> {'inferred_type_name', 'default', ...} of the notebook's cell tagged `parameters`."""
    import papermill

    params = papermill.inspect_notebook(str(path))
    assigned = _assigned_names(path)
    unparsed = sorted(assigned - set(params))
    if unparsed:  # papermill only logs these; a silently missing parameter would surface as "unknown" later
        raise ParameterError(f"{path.name}: papermill cannot parse the parameters {unparsed}; write each as "
                             "`name = literal  # plain comment`")
    if "profile" not in params or "seed" not in params:
        raise ParameterError(f"{path.name}: its `parameters` cell must declare `profile` and `seed`")
    return params


def _assigned_names(path: Path) -> set[str]:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise ParameterError(f"{path.name} has no cell tagged `parameters`")
    tree = ast.parse(cells[0].source)
    return {t.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(t, ast.Name)}


def parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a bare word is a string


def declared_type(default: str) -> type | None:
    """The type of a parameter's default (papermill infers none without annotations); None: any type."""
    try:
        value = ast.literal_eval(default)
    except (ValueError, SyntaxError):
        return None  # an expression: cannot tell
    return None if value is None else type(value)


def _fits(value, kind: type | None) -> bool:
    if kind is None:
        return True
    if isinstance(value, bool) != (kind is bool):
        return False
    if kind is float:
        return isinstance(value, (int, float))
    if kind in (list, tuple):
        return isinstance(value, (list, tuple))
    return isinstance(value, kind)


def validate(path: Path, overrides: dict) -> dict:
    """Check overrides against the notebook's declared parameters; return them, or raise naming the culprit."""
    declared = declared_parameters(path)
    for name, value in overrides.items():
        if name not in declared:
            raise ParameterError(f"{path.name} has no parameter {name!r}; it declares {sorted(declared)}")
        kind = declared_type(declared[name]["default"])
        if not _fits(value, kind):
            raise ParameterError(f"{path.name}: parameter {name!r} is {kind.__name__} (default "
                                 f"{declared[name]['default']}), got {type(value).__name__} {value!r}")
    if overrides.get("profile", "local") not in PROFILES:
        raise ParameterError(f"unknown profile {overrides['profile']!r}; choose one of {list(PROFILES)}")
    return overrides


def run(path: Path, parameters: dict, out: Path) -> None:
    import papermill

    failed = BUILD / "failed" / path.name
    tmp = BUILD / "running" / path.name
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(str(path), str(tmp), parameters=parameters, kernel_name="python3",
                                   cwd=str(path.parent), progress_bar=True)
    except papermill.PapermillExecutionError as err:
        failed.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(tmp, failed)
        raise SystemExit(f"FAILED {path.relative_to(ROOT)}: cell {err.cell_index} (execution count "
                         f"{err.exec_count}) raised {err.ename}: {err.evalue}\n  the executed notebook is kept "
                         f"at {failed.relative_to(ROOT)}") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(tmp, out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pic.reproduce", description=__doc__.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="*", help="numbers or names (e.g. 00 03_gsm8k); default: all")
    ap.add_argument("--profile", default="local", help=f"one of {PROFILES} (default: local)")
    ap.add_argument("--train", action="store_true", help="run the training notebooks (NN_train_*) instead")
    ap.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE",
                    help="override a parameter of every selected notebook (Python literal or bare string)")
    ap.add_argument("--list", action="store_true", help="list the selected notebooks and their parameters")
    args = ap.parse_args(argv)

    overrides = {"profile": args.profile}
    for item in args.parameter:
        name, sep, value = item.partition("=")
        if not sep:
            ap.error(f"-p takes NAME=VALUE, got {item!r}")
        overrides[name.strip()] = parse_value(value.strip())
    chosen = select(args.notebooks, args.train)
    if not chosen:
        print("no notebooks selected")
        return 0
    try:
        for nb in chosen:  # all checked before anything runs
            validate(nb, overrides)
    except ParameterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.list:
        for nb in chosen:
            print(nb.relative_to(ROOT), {k: v["default"] for k, v in declared_parameters(nb).items()})
        return 0
    total = time.perf_counter()
    for i, nb in enumerate(chosen, 1):
        out = nb if args.profile == "local" else BUILD / args.profile / nb.name
        print(f"[{i}/{len(chosen)}] {nb.relative_to(ROOT)} profile={args.profile} -> {out.relative_to(ROOT)}",
              flush=True)
        start = time.perf_counter()
        run(nb, overrides, out)
        print(f"[{i}/{len(chosen)}] done in {time.perf_counter() - start:.0f} s", flush=True)
    print(f"all {len(chosen)} notebook(s) done in {time.perf_counter() - total:.0f} s")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    sys.exit(main())
