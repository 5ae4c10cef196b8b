"""An evaluation killed mid-run resumes from its JSONL and ends with exactly the table of an uninterrupted run; a run
recomputes unless asked to resume; stored records are tied to everything they depend on."""
import functools
import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from pic.lm import tiny_random_llama
from pic.models.text_encoder import FrozenTextEncoder
from pic.tasks.gsm8k.data import Problem, few_shot_prefix, question_prompt
from pic.tasks.gsm8k.evaluation import Evaluation, Settings, run_evaluation
from pic.tasks.gsm8k.scorers import gsm8k_energy
from pic.sharding import code_hash
from pic.tasks.gsm8k.store import ResultStore, fingerprint
from pic.tasks.gsm8k.table import correctness

NUMERICS = {"dtype": "float32", "threads": 2}

SETTINGS = Settings(n_samples=2, temperature=1.0, max_new_tokens=4, rounds=2, sizes=(1, 2), chunk_size=2)
PROBLEMS = [Problem(f"test-{i:04d}", f"Tom has {i} apples and buys {i + 2} more. How many now?",
                    f"{i}+{i + 2}=<<{i}+{i + 2}={2 * i + 2}>>{2 * i + 2}\n#### {2 * i + 2}") for i in range(4)]


@functools.cache
def parts():
    return tiny_random_llama(), FrozenTextEncoder()


def build() -> Evaluation:
    (model, tok), encoder = parts()
    g = torch.Generator().manual_seed(0)
    weights = {"mean": torch.zeros(3 * encoder.dim), "std": torch.ones(3 * encoder.dim),
               "coef": torch.randn(3 * encoder.dim, generator=g) * 0.05, "bias": torch.zeros(1)}
    energy = gsm8k_energy(model, tok, lambda q: few_shot_prefix() + question_prompt(q), encoder, weights)
    return Evaluation(model, tok, model, energy, SETTINGS, seed=0)


def store_at(path) -> ResultStore:
    return ResultStore(path, fingerprint(SETTINGS, 0, "smoke", PROBLEMS, NUMERICS))


def killed_run(path: str, after_chunks: int) -> None:
    """Run in a child process: SIGKILL itself once `after_chunks` chunks are on disk (no cleanup, like a crash)."""
    import os

    def maybe_die(index):
        if index + 1 >= after_chunks:
            os.kill(os.getpid(), signal.SIGKILL)

    run_evaluation(build(), PROBLEMS, store_at(path), on_chunk=maybe_die, log=None, resume=True)


def table(records, configs):
    """What the notebook's tables read: per configuration, which problems are right, and every chosen text."""
    return {c: correctness(records, PROBLEMS, c).tolist() for c in configs if c != "samples"} | {
        k: r.get("text", r.get("texts")) for k, r in records.items()}


def test_a_killed_evaluation_resumes_where_it_stopped_and_gives_the_same_table(tmp_path):
    killed = tmp_path / "killed.jsonl"
    child = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                            "import test_gsm8k_resume as t; t.killed_run(sys.argv[2], 1)",
                            str(Path(__file__).parent), str(killed)], capture_output=True, text=True, timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    lines = killed.read_text().splitlines()
    done_before = {json.loads(line)["problem"] for line in lines[1:]}
    assert done_before == {"test-0000", "test-0001"}  # the first chunk only
    with open(killed, "a") as f:
        f.write('{"problem": "test-0002", "config": "gre')  # a record cut by the kill mid-write

    evaluation = build()
    resumed_chunks = []
    said = []
    resumed = run_evaluation(evaluation, PROBLEMS, store_at(killed), on_chunk=resumed_chunks.append, log=said.append,
                             resume=True)
    assert resumed_chunks == [1]  # the finished chunk was not redone
    assert said[-1].startswith(f"resumed: reused {2 * len(evaluation.configs)} records of "
                               f"{4 * len(evaluation.configs)}")
    fresh = run_evaluation(build(), PROBLEMS, store_at(tmp_path / "fresh.jsonl"), log=None)
    assert len(resumed) == len(fresh) == len(PROBLEMS) * len(evaluation.configs)
    assert table(resumed, evaluation.configs) == table(fresh, evaluation.configs)


def test_a_run_recomputes_by_default_and_resumes_only_when_asked(tmp_path):
    path = tmp_path / "runs.jsonl"
    store_at(path).append([{"problem": "test-0000", "config": "greedy", "correct": True}])
    assert store_at(path).start(resume=True) == {("test-0000", "greedy"): {"problem": "test-0000", "config": "greedy",
                                                                           "correct": True}}
    assert store_at(path).start(resume=False) == {} and path.with_suffix(".previous.jsonl").exists()


def test_results_of_other_settings_numerics_or_problems_are_set_aside_not_mixed_in(tmp_path):
    path = tmp_path / "runs.jsonl"
    others = [fingerprint(Settings(n_samples=3), 0, "smoke", PROBLEMS, NUMERICS),
              fingerprint(SETTINGS, 0, "smoke", PROBLEMS, {"dtype": "bfloat16", "threads": 2}),
              fingerprint(SETTINGS, 0, "smoke", PROBLEMS, {"dtype": "float32", "threads": 4}),
              fingerprint(SETTINGS, 0, "smoke", [Problem(p.id, p.question + " ", p.solution) for p in PROBLEMS],
                          NUMERICS)]
    for other in others:
        store_at(path).append([{"problem": "test-0000", "config": "greedy", "correct": True}])
        assert ResultStore(path, other).load() == {} and path.with_suffix(".previous.jsonl").exists()
        path.with_suffix(".previous.jsonl").unlink()
    assert "libraries" in others[0] and "torch" in others[0]["libraries"]


def test_the_fingerprint_changes_when_any_file_under_pic_changes(tmp_path):
    """The old fingerprint hashed six files by hard-coded path: an edit of the energy or an optimizer went unseen."""
    import shutil

    root = tmp_path / "pic"
    shutil.copytree(Path(__file__).resolve().parents[1] / "pic", root, ignore=shutil.ignore_patterns("__pycache__"))
    before = code_hash(root)
    for edited in ["energy.py", "optim/rerank_rounds.py", "lm/decoding.py", "tasks/gsm8k/scorers.py"]:
        path = root / edited
        text = path.read_text()
        path.write_text(text + "\n# edited\n")
        assert code_hash(root) != before, edited
        path.write_text(text)
    assert code_hash(root) == before


def test_bootstrap_intervals_cover_the_accuracy_and_match_the_binomial_spread():
    from pic.stats import bootstrap_interval, paired_interval

    values = np.r_[np.ones(30), np.zeros(120)]  # 20% of 150 problems
    lo, hi = bootstrap_interval(values, seed=0)
    half = 1.96 * np.sqrt(0.2 * 0.8 / 150)  # the normal approximation, 0.064
    assert lo < 0.2 < hi and abs((0.2 - lo) - half) < 0.012 and abs((hi - 0.2) - half) < 0.012
    assert bootstrap_interval(values, seed=0) == (lo, hi)  # seeded
    assert bootstrap_interval(np.zeros(150)) == (0.0, 0.0)
    a, b = np.r_[np.ones(10), np.zeros(140)], np.zeros(150)
    assert paired_interval(a, b)[0] > 0 and paired_interval(b, a)[1] < 0
