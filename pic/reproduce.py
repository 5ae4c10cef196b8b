"""Run the numbered notebooks with papermill, in order: `python -m pic.reproduce [NN ...] [--profile P] [-p k=v]`.

At the default profile (`local`) with no other parameter changed, each notebook is executed in place, so the
committed notebooks hold the outputs of the last run; other profiles write their executed copies under
build/<profile>/, and runs with changed parameters under build/runs/<profile>-<changes>/ (never over the committed
notebook). Training notebooks (notebooks/NN_train_*.ipynb) produce the committed checkpoints and run only with
--train: without it, a number or name selects experiment notebooks only. Parameters are checked against each
notebook's `parameters` cell (types from the default, or from an annotation where the default is None) before
anything runs; a failed notebook is kept under build/failed/ and named, with its cell, in the error.

The runner records each notebook's wall time and the peak resident memory of its kernel into that run's
results.json (meta.runner = {wall_seconds, peak_rss_mb, mean_load, cores, profile}: mean_load is the machine's
1-minute load average over the run, so a time measured while other jobs ran says so); the README's time and memory
table is generated
from those (`python -m pic.readme`). Progress bars of pic (pic.progress) stream to this terminal as lines with the
time left, through a side file named in $PIC_PROGRESS_FILE, and nothing of this machine lands in the notebook.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import resource
import shutil
import sys
import threading
import time
from pathlib import Path

from pic.assets import ROOT
from pic.progress import PROGRESS_FILE
from pic.report import PROFILES, SAME_OUTPUTS, figures_root, run_folder

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
    """Notebooks of the kind (training or experiment) whose number or name starts with one of `keys` (all of the
    kind when none). A key that matches only notebooks of the other kind is an error that says so."""
    pool = numbered_notebooks(training)
    if not keys:
        return pool

    def matches(p: Path, k: str) -> bool:
        return p.name.startswith(k) or p.stem == k

    chosen = [p for p in pool if any(matches(p, k) for k in keys)]
    missing = [k for k in keys if not any(matches(p, k) for p in pool)]
    other = [k for k in missing if any(matches(p, k) for p in numbered_notebooks(not training))]
    if other:
        hint = ("is a training notebook: it rewrites the committed checkpoints and runs only with --train" if not training
                else "is an experiment notebook: run it without --train")
        raise SystemExit(f"{other} {hint}")
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


_ANNOTATED = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict, "tuple": tuple}


def declared_type(default: str, annotation: str | None = None) -> type | None:
    """The type of a parameter: its annotation (`n: int | None = None`), else its default's type; None: any."""
    if annotation:
        kinds = [k.strip() for k in annotation.replace("Optional[", "").rstrip("]").split("|")]
        known = [_ANNOTATED[k.split("[")[0]] for k in kinds if k.split("[")[0] in _ANNOTATED]
        if known:
            return known[0]
    try:
        value = ast.literal_eval(default)
    except (ValueError, SyntaxError):
        return None  # an expression: cannot tell
    return None if value is None else type(value)


def _annotations(path: Path) -> dict[str, str]:
    """name -> annotation text of the annotated parameters (`name: int | None = None`)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", []))
    return {n.target.id: ast.unparse(n.annotation) for n in ast.parse(cell.source).body
            if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}


def _fits(value, kind: type | None) -> bool:
    if kind is None:
        return True
    if value is None:  # None always means "the profile's default"
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
    annotations = _annotations(path)
    untyped = sorted(n for n, d in declared.items() if d["default"] == "None" and n not in annotations)
    if untyped:
        raise ParameterError(f"{path.name}: parameters {untyped} default to None without a type: annotate them "
                             "in the `parameters` cell, e.g. `n_samples: int = None  # None for the profile default`")
    for name, value in overrides.items():
        if name not in declared:
            raise ParameterError(f"{path.name} has no parameter {name!r}; it declares {sorted(declared)}")
        kind = declared_type(declared[name]["default"], annotations.get(name))
        if not _fits(value, kind):
            raise ParameterError(f"{path.name}: parameter {name!r} is {kind.__name__} (default "
                                 f"{declared[name]['default']}), got {type(value).__name__} {value!r}")
    if overrides.get("profile", "local") not in PROFILES:
        raise ParameterError(f"unknown profile {overrides['profile']!r}; choose one of {list(PROFILES)}")
    return overrides


def run(path: Path, parameters: dict, out: Path) -> dict:
    """Execute `path` with `parameters` into `out`; return {wall_seconds, peak_rss_mb, mean_load, cores} of the run."""
    import papermill

    failed = BUILD / "failed" / path.name
    tmp = BUILD / "running" / path.name
    tmp.parent.mkdir(parents=True, exist_ok=True)
    lines = tmp.with_suffix(".progress")
    lines.unlink(missing_ok=True)
    start = time.perf_counter()
    try:
        with (kernel_environment(lines), StreamLines(lines, path.stem), KernelMemory() as memory,
              MachineLoad() as load):
            papermill.execute_notebook(str(path), str(tmp), parameters=parameters, kernel_name="python3",
                                       cwd=str(path.parent), progress_bar=True)
    except papermill.PapermillExecutionError as err:
        failed.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(tmp, failed)
        raise SystemExit(f"FAILED {path.relative_to(ROOT)}: cell {err.cell_index} (execution count "
                         f"{err.exec_count}) raised {err.ename}: {err.evalue}\n  the executed notebook is kept "
                         f"at {failed.relative_to(ROOT)}") from None
    finally:
        lines.unlink(missing_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    forget_the_machine(tmp, source=path, out=out)
    shutil.move(tmp, out)
    return {"wall_seconds": round(time.perf_counter() - start, 1), "peak_rss_mb": memory.peak_mb,
            "mean_load": load.mean, "cores": os.cpu_count()}


def forget_the_machine(notebook: Path, source: Path, out: Path) -> None:
    """Keep what is of this machine out of the executed notebook: papermill's record of absolute paths becomes
    repository-relative, and the timestamps and durations of each cell and of the run (papermill's and nbclient's)
    go; the run's wall time is kept in its results.json instead."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    record = nb.metadata.get("papermill", {})
    for key in ("start_time", "end_time", "duration", "exception"):
        record.pop(key, None)
    record.update(input_path=_relative(source), output_path=_relative(out))
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    nbformat.write(nb, notebook)


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name


@contextlib.contextmanager
def kernel_environment(progress_lines: Path):
    """The environment the notebook's kernel starts with (it inherits this process's): pic's progress bars write
    lines to `progress_lines` instead of the notebook; the hub libraries' download/loading bars are off (their
    rates and times would be stored); tqdm.auto's import-time warning that ipywidgets is missing is silenced (it
    names a path of this machine, and no widget is wanted here)."""
    given = {PROGRESS_FILE: str(progress_lines), "HF_HUB_DISABLE_PROGRESS_BARS": "1",
             "PYTHONWARNINGS": ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"),
                                                      "ignore:IProgress not found"]))}
    saved = {k: os.environ.get(k) for k in given}
    os.environ.update(given)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class Polling:
    """A background thread that calls `poll()` every `every` seconds while the `with` block runs, then `finish()`
    once the block has ended (the runner's three watchers of a notebook run)."""

    def __init__(self, every: float):
        self.every = every
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()
        self.finish()

    def _loop(self):
        while not self._done.wait(self.every):
            self.poll()

    def poll(self) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        pass


class StreamLines(Polling):
    """Print the lines appended to `path` (the kernel's progress) to this terminal while the notebook runs."""

    def __init__(self, path: Path, label: str, every: float = 0.5):
        super().__init__(every)
        self.path, self.label, self._offset = path, label, 0

    def poll(self):
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        complete = data[:data.rfind(b"\n") + 1]  # a line still being written waits for the next look
        self._offset += len(complete)
        from tqdm import tqdm

        for line in complete.decode("utf-8", "replace").splitlines():
            tqdm.write(f"    {self.label} | {line}")  # above papermill's cell bar, not through it

    finish = poll  # the lines written after the last look


class KernelMemory(Polling):
    """The peak resident memory, in MB, of the largest process started while this is open (the kernel).

    Two measures, the larger kept: the high-water mark of the children this process has waited for
    (getrusage(RUSAGE_CHILDREN).ru_maxrss; exact when this run sets a new high, as the first notebook of a run
    always does), and each descendant's own high-water mark (VmHWM in /proc, else its RSS) polled every 0.2 s
    (catches a notebook that stays below an earlier one)."""

    def __init__(self, every: float = 0.2):
        super().__init__(every)
        self.peak_mb, self._polled_kb = None, 0
        try:
            import psutil
        except ImportError:  # only the getrusage measure is left
            psutil = None
        self._psutil = psutil

    def __enter__(self):
        self._before_kb = _children_maxrss_kb()
        return super().__enter__()

    def poll(self):
        if self._psutil is None:
            return
        for child in self._psutil.Process().children(recursive=True):
            with contextlib.suppress(self._psutil.Error, OSError):
                self._polled_kb = max(self._polled_kb, _peak_kb(child))

    def finish(self):
        after_kb = _children_maxrss_kb()
        peak_kb = max(self._polled_kb, after_kb if after_kb > self._before_kb else 0)
        self.peak_mb = round(peak_kb / 1024, 1) if peak_kb else None


class MachineLoad(Polling):
    """The mean of the machine's 1-minute load average, sampled every `every` seconds while this is open (None for
    a run shorter than one sample): a notebook's own threads count too, so a load well above its threads means
    other jobs shared the cores and the wall time overstates the cost."""

    def __init__(self, every: float = 5.0):
        super().__init__(every)
        self.mean, self._samples = None, []

    def poll(self):
        self._samples.append(os.getloadavg()[0])

    def finish(self):
        self.mean = round(sum(self._samples) / len(self._samples), 2) if self._samples else None


def _peak_kb(process) -> int:
    """A process's own peak resident memory so far (Linux: VmHWM), else its resident memory now, in kB."""
    status = Path(f"/proc/{process.pid}/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return process.memory_info().rss // 1024


def _children_maxrss_kb() -> int:
    kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return kb // 1024 if sys.platform == "darwin" else kb  # macOS reports bytes


def record_run(results: Path, started: float, **runner) -> bool:
    """Add meta.runner (the runner's measures) to the results.json the notebook just wrote; False when it wrote
    none (then nothing is recorded)."""
    if not results.exists() or results.stat().st_mtime < started - 1:  # an older run's file is not this one's
        return False
    data = json.loads(results.read_text())
    data["meta"]["runner"] = runner
    results.write_text(json.dumps(data, indent=2) + "\n")
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pic.reproduce", description=__doc__.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="*", help="numbers or names (e.g. 00 03_gsm8k); default: all")
    ap.add_argument("--profile", default="local", help=f"one of {PROFILES} (default: local)")
    ap.add_argument("--train", action="store_true",
                    help="run the training notebooks (NN_train_*) instead, with retrain=True: they retrain and "
                         "rewrite the committed checkpoints (without --train they load them)")
    ap.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE",
                    help="override a parameter of every selected notebook (Python literal or bare string)")
    ap.add_argument("--list", action="store_true", help="list the selected notebooks and their parameters")
    args = ap.parse_args(argv)

    overrides = {}
    for item in args.parameter:
        name, sep, value = item.partition("=")
        if not sep:
            ap.error(f"-p takes NAME=VALUE, got {item!r}")
        overrides[name.strip()] = parse_value(value.strip())
    if "profile" in overrides and overrides["profile"] != args.profile and args.profile != "local":
        ap.error(f"--profile {args.profile} and -p profile={overrides['profile']} disagree: give one")
    profile = overrides.pop("profile", args.profile)  # -p profile=X is --profile X (and never runs in place)
    overrides = {"profile": profile, **overrides}
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
        declared = declared_parameters(nb)
        # --train retrains (retrain=True) unless told otherwise: `--train 10 -p retrain=False` re-executes a
        # training notebook on its committed checkpoints
        given = {"retrain": True, **overrides} if args.train and "retrain" in declared else overrides
        defaults = {k: parse_value(v["default"]) for k, v in declared.items()}
        changed = {k: v for k, v in given.items() if k not in SAME_OUTPUTS and v != defaults.get(k)}
        folder = run_folder(profile, changed)
        out = BUILD / folder / nb.name if folder else nb
        print(f"[{i}/{len(chosen)}] {nb.relative_to(ROOT)} profile={profile} -> {out.relative_to(ROOT)}", flush=True)
        started = time.time()
        measured = run(nb, given, out)
        peak = f"{measured['peak_rss_mb'] / 1024:.1f} GB" if measured["peak_rss_mb"] else "not measured"
        print(f"[{i}/{len(chosen)}] done in {measured['wall_seconds']:.0f} s, peak memory {peak}", flush=True)
        results = figures_root() / nb.stem / folder / "results.json"
        if not record_run(results, started, **measured, profile=profile):
            print(f"    note: {nb.stem} wrote no {results.name} under {results.parent}: its time and memory are "
                  "not recorded", flush=True)
    print(f"all {len(chosen)} notebook(s) done in {time.perf_counter() - total:.0f} s")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    sys.exit(main())
