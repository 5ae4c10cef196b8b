"""The ablations of 60: every subset counted once, cost lines fitted right, model calls counted as made, zero
iterations of consensus leaving the generator's own choice, and the notebook end to end at smoke."""
import json
import os
from pathlib import Path

import numpy as np
import papermill
import pytest
import torch

from pic import ComposedEnergy, FunctionScorer
from pic.energy import CountingScorer
from pic.lm import PromptedLM, tiny_random_llama
from pic.optim.token_consensus import ConsensusConfig, consensus_decode
from pic.report import read_overhead, write_overhead
from pic.stats import by_disagreement, disagreement, fit_line, subset_effects
from pic.tasks.image import ablations as image_ablations
from pic.tasks.image.generation import row_weights
from pic.tasks.image.loading import PROFILES as IMAGE_PROFILES
from pic.tasks.robot import ablations as robot_ablations
from pic.tasks.robot.table import VIEW_WEIGHTS

ROOT = Path(__file__).resolve().parents[1]


def test_every_subset_of_table_1s_scorers_is_enumerated_exactly_once():
    subsets = image_ablations.scorer_subsets()
    assert len(subsets) == 2 ** len(image_ablations.ig.SCORERS)
    assert len({frozenset(s) for s in subsets}) == len(subsets)
    assert subsets[0] == () and subsets[-1] == image_ablations.ig.SCORERS


def test_the_fit_recovers_a_known_line_and_its_r2_drops_with_noise():
    x = np.arange(1, 9, dtype=float)
    exact = fit_line(x, 3.0 * x + 2.0)
    assert exact.slope == pytest.approx(3.0) and exact.intercept == pytest.approx(2.0) and exact.r2 == pytest.approx(1)
    noisy = fit_line(x, 3.0 * x + 2.0 + np.random.default_rng(0).normal(0, 3, x.size))
    assert noisy.r2 < 0.99 and noisy.slope == pytest.approx(3.0, abs=1.5)
    with pytest.raises(ValueError, match="distinct x"):
        fit_line([2, 2, 2], [1, 2, 3])


def rows_of(quality):
    return [{"scorers": " + ".join(s) or "none", "n_scorers": len(s), "q": v} for s, v in quality.items()]


def test_subset_effects_find_the_scorer_that_hurts():
    # additive quality: a adds 0.2, b adds 0.1, c takes 0.3 away, on top of 0.5 for no scorer
    gain = {"a": 0.2, "b": 0.1, "c": -0.3}
    subsets = [(), ("a",), ("b",), ("c",), ("a", "b"), ("a", "c"), ("b", "c"), ("a", "b", "c")]
    effects = subset_effects(rows_of({s: 0.5 + sum(gain[n] for n in s) for s in subsets}), ["a", "b", "c"], "q")
    assert {r["scorer"]: round(r["mean_gain"], 6) for r in effects} == gain
    assert [r["pairs"] for r in effects] == [4, 4, 4]
    assert {r["scorer"]: r["helped"] for r in effects} == {"a": 4, "b": 4, "c": 0}
    twice = rows_of({("a",): 0.1}) + rows_of({("a",): 0.2})
    with pytest.raises(ValueError, match="appears twice"):
        subset_effects(twice, ["a"], "q")


def test_disagreement_is_zero_for_the_same_order_and_two_for_the_reverse():
    assert disagreement({"a": [1, 2, 3, 4], "b": [10, 20, 30, 40]}) == pytest.approx(0)
    assert disagreement({"a": [1, 2, 3, 4], "b": [4, 3, 2, 1]}) == pytest.approx(2)
    assert disagreement({"a": [1, 2, 3, 4], "b": [1, 2, 3, 4], "c": [4, 3, 2, 1]}) == pytest.approx(1 + 1 / 3)
    with pytest.raises(ValueError, match="at least 2 scorers"):
        disagreement({"a": [1, 2, 3]})


def test_items_are_binned_by_disagreement_and_a_gain_that_grows_with_it_correlates():
    # consensus is right exactly on the half of the items where the scorers disagree most; single scorers never
    rows = [{"disagreement": d, "consensus_right": d >= 0.5, "a_right": False, "b_right": False}
            for d in np.linspace(0, 1, 12)]
    bins, correlation = by_disagreement(rows, ["a", "b"], bins=2)
    assert [b["items"] for b in bins] == [6, 6]
    assert [b["consensus"] for b in bins] == [0.0, 1.0] and [b["any_single"] for b in bins] == [0.0, 0.0]
    assert bins[1]["consensus_low"] < 1.0 == bins[1]["consensus_high"]
    assert correlation["rho"] > 0.8 and correlation["low"] > 0
    one, few = by_disagreement(rows[:1], ["a", "b"])
    assert len(one) == 1 and np.isnan(few["rho"])


def test_a_counting_scorer_counts_each_call_and_changes_no_energy():
    scorer = FunctionScorer(lambda x, **_: (x ** 2).sum(1), "square")
    counted = CountingScorer(scorer)
    x = torch.randn(5, 3)
    energies, grad = ComposedEnergy([counted]).energy_and_grad(x)
    expected, expected_grad = ComposedEnergy([scorer]).energy_and_grad(x)
    ComposedEnergy([counted])(x[:2])
    assert (counted.calls, counted.proposals) == (2, 7)
    torch.testing.assert_close(energies.total, expected.total)
    torch.testing.assert_close(grad, expected_grad)


def test_zero_iterations_of_token_consensus_leave_the_language_models_own_answer():
    model, tokenizer = tiny_random_llama()
    lm = PromptedLM(model, tokenizer, "Q: what animal is on the sofa?\nA: cat\n", lambda q: f"Q: {q}\nA:")
    question = ["what shape is present?"]
    prompt = lm.prompt_ids(question[0])
    _, ids = lm.top_k([prompt], [len(prompt)], 8)
    wanted = tokenizer.decode([int(ids[0, 5])])  # the model's 6th choice, which the scorer asks for
    likes = FunctionScorer(lambda x, **_: torch.tensor([-5.0 if wanted in s else 0.0 for s in x]), "likes",
                           differentiable=False)

    def decode(energy, iterations):
        config = ConsensusConfig(top_k=8, step_size=3.0, max_new_tokens=1, iterations=iterations)
        return consensus_decode(lm, question, lambda b, a: a, energy, config).texts

    alone = decode(None, 5)
    assert decode(ComposedEnergy([likes]), 0) == alone
    assert decode(ComposedEnergy([likes]), 5) == [wanted.strip()] != alone


def test_the_overhead_file_says_how_to_make_it_when_absent_and_reads_back_what_was_written(tmp_path):
    rows, note = read_overhead(tmp_path / "overhead.json")
    assert rows == [] and "make bench" in note
    written = [{"family": "selection", "raw_seconds": 1.0, "consensus_seconds": 1.02, "ratio": 1.02}]
    write_overhead(written, tmp_path / "overhead.json")
    rows, note = read_overhead(tmp_path / "overhead.json")
    assert rows == written and "goal <= 1.05" in note


def test_a_smoke_run_measures_every_subset_once_and_counts_the_calls_it_expects(tmp_path):
    papermill.execute_notebook(str(ROOT / "notebooks" / "60_ablations.ipynb"), str(tmp_path / "out.ipynb"),
                               parameters={"profile": "smoke"}, kernel_name="python3", cwd=str(ROOT / "notebooks"),
                               progress_bar=False)
    results = json.loads((Path(os.environ["PIC_FIGURES_DIR"]) / "60_ablations" / "smoke" / "results.json").read_text())
    tables = results["tables"]
    for name, subsets in (("image_subsets", 8), ("vqa_subsets", 8)):
        names = [r["scorers"] for r in tables[name]]
        assert len(names) == len(set(names)) == subsets, name
    robot = [(r["goal"], r["scorers"]) for r in tables["robot_subsets"]]
    assert len(robot) == len(set(robot)) == 16
    calls = tables["image_steps"] + tables["image_mcmc"] + tables["image_subsets"]
    assert all(r["model_calls"] == r["expected_calls"] for r in calls)
    assert {r["measure"] for r in tables["cost_fits"]} == {"seconds_per_sample", "model_calls"}
    assert all(r["r2"] is not None for r in tables["cost_fits"])
    folder = Path(os.environ["PIC_FIGURES_DIR"]) / "60_ablations" / "smoke"
    assert len(tables["image_singles_validation"]) == 3 and tables["image_weights_validation"]
    assert tables["vqa_disagreement"] and tables["robot_disagreement_text"] and tables["robot_disagreement_image"]
    assert [r["goal"] for r in tables["robot_weights_validation"]] == ["text", "image"]  # smoke: one cell per goal
    assert len(tables["robot_singles_validation"]) == 6
    for figure in ("quality_vs_iterations", "quality_vs_scorers", "cost", "disagreement", "image_weights_validation",
                   "robot_weights_validation"):
        assert (folder / f"{figure}.pdf").exists() and (folder / f"{figure}.png").exists(), figure
    assert [r["claim"] for r in tables["cost_claims"]] == ["wall time per sample is linear in the number of steps "
                                                           "(R^2 >= 0.95)"]


def test_the_all_scorer_scales_change_only_the_row_of_every_scorer():
    weights, scales = {"clip": 2.0, "cls": 4.0, "cls_free": 1.0}, {"clip": 1.0, "cls": 0.5}
    assert row_weights(("clip", "cls", "cls_free"), weights, 0.5, scales) == {"clip": 1.0, "cls": 1.0, "cls_free": 0.5}
    assert row_weights(("clip", "cls"), weights, 0.5, scales) == {"clip": 1.0, "cls": 2.0}
    assert row_weights(("cls",), weights, 0.5, scales) == {"cls": 4.0}


def grid_cell(goal, front, side, success):
    return {"goal": goal, "top_weight": 1.0, "front_weight": front, "side_weight": side, "success": success,
            "ci95_low": success - 0.1, "ci95_high": success + 0.1}


def test_the_view_weights_are_the_best_cell_and_among_equals_the_nearest_to_equal_weights():
    grid = [grid_cell("text", 4.0, 4.0, 0.9), grid_cell("text", 2.0, 1.0, 0.9), grid_cell("text", 1.0, 1.0, 0.8),
            grid_cell("image", 0.25, 4.0, 0.7), grid_cell("image", 1.0, 1.0, 0.6)]
    assert robot_ablations.choose_weights(grid, "text") == {"front": 2.0, "side": 1.0, "top": 1.0}
    assert robot_ablations.choose_weights(grid, "image") == {"front": 0.25, "side": 4.0, "top": 1.0}
    singles = [{"goal": g, "scorers": v, "success": 0.5, "ci95_low": 0.4, "ci95_high": 0.6}
               for g in ("text", "image") for v in ("front", "side", "top")]
    claims = robot_ablations.weight_claims(grid, singles)
    assert [c["holds"] for c in claims if "beats" in c["claim"]] == [True, False]  # 0.8 > 0.6; 0.6 = 0.6


def test_the_committed_weights_are_the_cells_60s_committed_validation_grids_choose():
    """41's view weights and 11's all-scorer scales against the validation grids 60 stored: changing one without
    re-running the other fails here."""
    figures = ROOT / "figures" / "60_ablations"
    robot_grid = json.loads((figures / "robot_weights_validation.json").read_text())
    for goal in ("text", "image"):
        assert robot_ablations.choose_weights(robot_grid, goal) == VIEW_WEIGHTS[goal], goal
    image_grid = json.loads((figures / "image_weights_validation.json").read_text())
    local = IMAGE_PROFILES["11_image_generation"]["local"]["all_scorer_scales"]
    assert image_ablations.chosen_scales(image_grid, "accuracy") == local
    assert image_ablations.chosen_scales(image_grid, "kid") == local
