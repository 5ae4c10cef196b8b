"""A table's evaluation as a command, the same code in one process or split across many (pic.sharding):

    env ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=AVX2,STRICT ONEDNN_MAX_CPU_ISA=AVX2 \\
        torchrun --nproc_per_node 2 -m pic.evaluate gsm8k --profile paper --out build/eval/gsm8k

(or `accelerate launch --num_processes N -m pic.evaluate ...`; plain `python -m pic.evaluate ...` is one process).
Each table's unit of work (TABLES) is the one its notebook's loop runs through the package, seeded by the item,
never by the rank or the number of processes, so the merged table is the one a single process writes.
OUT gets records.rank<r>.jsonl per process (rerun the same command to resume after a crash: recorded items are
not computed again; records of another fingerprint are ignored) and the table as TABLES[...].file, rows as the
notebook prints them. The environment pins one kernel path (pic.lm.numerics); it must be set before torch loads,
hence on the command. Each table sets torch's thread count as its notebook does (`--threads`): torchrun's one
thread per process is overridden, so 1 and N processes compute with the same reductions.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence


def _sharded_table(table: str, items: Sequence[str], compute: Callable[[str], Mapping], out: Path, fingerprint: dict,
                   rows_of: Callable[[dict], list[dict]], state) -> list[dict] | None:
    """run_sharded, then on rank 0 the table's rows from every rank's records, written as OUT/<its file>."""
    from pic.report import table_json
    from pic.sharding import finish, run_sharded

    done = run_sharded(list(items), compute, out, fingerprint, state=state)
    rows = None
    if state.is_main_process:
        rows = rows_of(done)
        (out / TABLES[table].file).write_text(table_json(rows))
    finish(state)
    return rows


def _start(seed: int, threads: int | None, state):
    """The distributed state, the seeds and the thread count a notebook starts with."""
    import torch

    from pic.runtime import seed_everything
    from pic.sharding import distributed_state

    state = state or distributed_state()
    if threads is not None:
        torch.set_num_threads(threads)
    seed_everything(seed)
    return state


def image(profile: str, out: Path, seed: int = 0, n_per_class: int | None = None, threads: int = 2,
          state=None) -> list[dict] | None:
    """Notebook 11's evaluation (Table 1); rank 0 returns the table's rows (others None). Refused at `paper`,
    before any download: FID/KID/IS are measured here on our Fashion-MNIST evaluation net against Fashion-MNIST
    references, which the hub generator's images are not (notebook 11 at paper draws samples and figures only)."""
    from pic.assets import pins
    from pic.sharding import numeric_path, run_fingerprint
    from pic.tasks.image import checkpoints, load, table
    from pic.tasks.image import generation as ig

    if profile == "paper":
        raise ValueError("Table 1 has no `paper` evaluation here: its metrics need our Fashion-MNIST evaluation net "
                         "and references, and the paper's generator draws ImageNet classes (notebook 11 at paper "
                         "draws samples and figures only); run `--profile local` (or smoke)")
    state = _start(seed, threads, state)
    exp = load(profile, "11_image_generation", n_per_class=n_per_class)
    reference = exp.reference()
    references = "reference rows"

    def compute(item: str) -> dict:
        if item == references:  # (row, per-seed quality) pairs: records are written with sorted keys
            return {"rows": list(exp.reference_rows(reference, seed).items())}
        return {"rows": [(item, exp.row_quality(exp.sample_row(item, seed).samples, reference, seed))]}

    def rows_of(done: dict) -> list[dict]:
        per_seed = {row: q for record in done.values() for row, q in record["rows"]}
        return table.printed(table.rows(per_seed))

    settings = {**exp.settings, "weights": exp.weights, "combination_scale": exp.combination_scale,
                "mcmc_step_scale": exp.mcmc_step_scale, "mcmc_steps": 1}
    key = run_fingerprint(settings, seed, profile, numerics=numeric_path(),
                          checkpoints=pins(*checkpoints.NAMES.values()) if exp.committed else {})
    return _sharded_table("image", [*ig.ROWS, references], compute, out, key, rows_of, state)


def vqa(profile: str, out: Path, seed: int = 0, model_seeds: list[int] | None = None, per_kind: int | None = None,
        data_root: str = "", threads: int = 2, state=None) -> list[dict] | None:
    """Notebook 21's evaluation (Table 2): the step size chosen as the notebook does (by every process: it is
    deterministic), then one item per run; rank 0 returns the table's rows (others None)."""
    from pic.assets import pins
    from pic.sharding import numeric_path, run_fingerprint
    from pic.tasks.vqa import checkpoints, experiment, table
    from pic.tasks.vqa import settings as vqa_settings
    from pic.tasks.vqa.scorers import TOWERS

    state = _start(seed, threads, state)
    settings = vqa_settings.load(profile, seed, model_seeds, per_kind, data_root=data_root)
    setup = experiment.load(settings)  # paper offline: refused naming every hub id, as in the notebook
    _, step_size = experiment.choose_step_size(setup)
    config = setup.config(step_size)
    runs = {f"run-{i}-model-seed-{m}": i for i, m in enumerate(settings.model_seeds)}

    def rows_of(done: dict) -> list[dict]:
        per_seed = [r for record in done.values() for r in record["per_seed"]]
        return table.accuracy_table(per_seed, setup.kinds(per_seed))

    read = [] if settings.hub_models else [name for m in settings.model_seeds for name in
                                           [*(checkpoints.scorer_name(t, m) for t in TOWERS),
                                            checkpoints.reference_name(m)]]
    key = run_fingerprint(settings, seed, profile, step_size=step_size, numerics=numeric_path(),
                          checkpoints=pins(*read))

    def compute(item: str) -> dict:
        run = experiment.evaluate_run(setup, config, runs[item], log=None)
        return {"per_seed": run.per_seed, "questions": [q.text for q in run.questions],
                "texts": {row: answers.texts for row, answers in run.rows.items()}}

    return _sharded_table("vqa", list(runs), compute, out, key, rows_of, state)


def gsm8k(profile: str, out: Path, seed: int = 0, n_problems: int | None = None, state=None) -> list[dict] | None:
    """Notebook 31's evaluation (Table 3, the paper-analog rows); rank 0 returns the table's rows (others None)."""
    from pic.sharding import distributed_state
    from pic.tasks.gsm8k import analysis, load
    from pic.tasks.gsm8k.data import evaluation_subset, load_problems
    from pic.tasks.gsm8k.evaluation import Evaluation
    from pic.tasks.gsm8k.store import fingerprint

    state = state or distributed_state()
    setup = load(profile, "31_gsm8k", n_problems=n_problems)
    problems = evaluation_subset(load_problems("test")[0], setup.settings["n_problems"], seed)
    evaluation = Evaluation(setup.generator, setup.tokenizer, setup.finetuned, setup.energy, setup.run_settings, seed)
    size = setup.run_settings.chunk_size
    chunks = {f"chunk-{i // size:05d}": (i // size, problems[i:i + size]) for i in range(0, len(problems), size)}
    key = fingerprint(setup.run_settings, seed, profile, problems, setup.numerics, checkpoints=setup.checkpoints)

    def rows_of(done: dict) -> list[dict]:
        records = {(r["problem"], r["config"]): r for chunk in done.values() for r in chunk["records"]}
        n, rounds = setup.run_settings.n_samples, setup.run_settings.rounds
        return analysis.paper_analog_rows(records, problems, analysis.paper_analog_labels(n, rounds), seed)

    return _sharded_table("gsm8k", list(chunks), lambda name: {
        "records": evaluation.run_chunk(chunks[name][1], chunks[name][0])}, out, key, rows_of, state)


def robot(profile: str, out: Path, seed: int = 0, n_episodes: int | None = None, hub_id: str | None = None,
          threads: int = 1, state=None) -> list[dict] | None:
    """Notebook 41's evaluation (Table 4, the success rates): one item per episode seed, every row on it; rank 0
    returns the table's rows (others None)."""
    from dataclasses import fields

    import pic.tasks.robot as robot_task
    from pic.assets import pins
    from pic.models.hub_clip import PAPER_CLIP
    from pic.sharding import numeric_path, run_fingerprint
    from pic.tasks.robot import checkpoints
    from pic.tasks.robot.episodes import EpisodeRecord, run_episode_rows
    from pic.tasks.robot.planner import WorldModel
    from pic.tasks.robot.scorers import image_scorers, text_scorers
    from pic.tasks.robot.sim import VIEWS, TabletopWorld
    from pic.tasks.robot.table import all_rows, success_rows

    state = _start(seed, threads, state)
    hub_id = hub_id or PAPER_CLIP
    settings = robot_task.load(profile, n_episodes=n_episodes)
    world = TabletopWorld(size=64)
    text = text_scorers(profile, seed=seed, hub_id=hub_id)  # in the notebook's order: smoke's random weights
    image_scorer = image_scorers(profile, hub_id=hub_id)
    model, rows = WorldModel(world), all_rows(settings.pairs)
    episodes = {f"episode-{s}": s for s in settings.episode_seeds(seed)}
    kept = [f.name for f in fields(EpisodeRecord) if f.name != "final"]  # the final poses serve figures only

    def compute(item: str) -> dict:
        records, _, _ = run_episode_rows(world, model, episodes[item], rows, lambda view: text[view], image_scorer,
                                         settings.planner)
        return {"records": [{k: getattr(r, k) for k in kept} for r in records]}

    def rows_of(done: dict) -> list[dict]:
        return success_rows([EpisodeRecord(**r, final=None) for d in done.values() for r in d["records"]], rows)

    key = run_fingerprint(settings, seed, profile, hub_id=hub_id, numerics=numeric_path(),
                          checkpoints=pins(*map(checkpoints.name, VIEWS)) if profile == "local" else {})
    return _sharded_table("robot", list(episodes), compute, out, key, rows_of, state)


@dataclass(frozen=True)
class Table:
    """A table's command: the function that runs it, its notebook, the file rank 0 writes, the unit of work."""

    run: Callable[..., list[dict] | None]
    notebook: str
    file: str
    unit: str


TABLES = {
    "image": Table(image, "11_image_generation", "table1.json", "a row of Table 1 on every seed in one batch "
                   "(`Experiment.sample_row`), and the floor/ceiling reference rows; refused at `paper`"),
    "vqa": Table(vqa, "21_visual_qa", "table2.json", "a run: a model seed and its own test subset "
                 "(`experiment.evaluate_run`), after the step-size choice, which every process makes"),
    "gsm8k": Table(gsm8k, "31_gsm8k", "table3.json", "a chunk of problems, fixed by the profile's chunk size "
                   "(`Evaluation.run_chunk`)"),
    "robot": Table(robot, "41_robot_manipulation", "table4.json", "an episode seed with every row on it "
                   "(`episodes.run_episode_rows`)"),
}
OPTIONS = {"n_per_class": "image", "model_seeds": "vqa", "per_kind": "vqa", "data_root": "vqa",
           "n_problems": "gsm8k", "n_episodes": "robot", "hub_id": "robot"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pic.evaluate", description=__doc__.split("\n\n")[0])
    ap.add_argument("table", choices=list(TABLES))
    ap.add_argument("--profile", default="local", help="smoke, local or paper (default: local)")
    ap.add_argument("--out", type=Path, required=True, help="folder for the per-process records and the table")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads per process (image, vqa, robot; default 2, 2 and 1: as notebook 11 runs on "
                         "2 cores, and as 21 and 41 set)")
    ap.add_argument("--n-per-class", type=int, default=None, help="image: samples per class, row and seed")
    ap.add_argument("--model-seeds", type=int, nargs="+", default=None, help="vqa: committed model seeds, one run each")
    ap.add_argument("--per-kind", type=int, default=None, help="vqa: test questions of each kind per run")
    ap.add_argument("--data-root", default=None, help="vqa at paper: the ActivityNet-QA folder")
    ap.add_argument("--n-problems", type=int, default=None, help="gsm8k: problems evaluated (default: the profile's)")
    ap.add_argument("--n-episodes", type=int, default=None, help="robot: episodes per row")
    ap.add_argument("--hub-id", default=None, help="robot at paper: the CLIP's hub id")
    args = ap.parse_args(argv)
    given = {k: v for k, v in vars(args).items() if k in OPTIONS and v is not None}
    foreign = [k for k in given if OPTIONS[k] != args.table]
    if foreign:
        ap.error(f"{', '.join('--' + k.replace('_', '-') for k in foreign)} not an option of {args.table}")
    if args.threads is not None:
        if args.table == "gsm8k":
            ap.error("--threads is not an option of gsm8k (its numeric path fixes 2, pic.lm.numerics)")
        given["threads"] = args.threads
    rows = TABLES[args.table].run(args.profile, args.out, seed=args.seed, **given)
    if rows is not None:
        print(f"{len(rows)} rows -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
