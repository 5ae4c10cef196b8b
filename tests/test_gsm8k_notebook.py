"""The GSM8K notebooks fill every row of Table 3 in a smoke run; the committed local runs cover the stated test
problems with bootstrap intervals around every accuracy, on the one pinned numeric path."""
import json
import os
from pathlib import Path

import papermill
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAPER_ROWS = 12  # ten methods + one sample + the oracle


def run_smoke(notebook: str, tmp_path) -> dict:
    papermill.execute_notebook(str(ROOT / "notebooks" / f"{notebook}.ipynb"), str(tmp_path / "out.ipynb"),
                               parameters={"profile": "smoke", "seed": 1}, kernel_name="python3",
                               cwd=str(ROOT / "notebooks"), progress_bar=False)
    folder = Path(os.environ["PIC_FIGURES_DIR"]) / notebook / "runs" / "smoke-seed=1"
    results = json.loads((folder / "results.json").read_text())
    assert results["meta"]["profile"] == "smoke" and results["meta"]["seed"] == 1
    assert results["meta"]["numerics"]["dtype"] == "float32" and results["meta"]["numerics"]["threads"] == 2
    lines = (folder / "evaluations.jsonl").read_text().splitlines()
    fingerprint = json.loads(lines[0])["fingerprint"]
    assert fingerprint["profile"] == "smoke" and fingerprint["numerics"] == results["meta"]["numerics"]
    return results | {"folder": folder}


def check_paper_analog(results):
    table = results["tables"]["table3"]
    assert len(table) == PAPER_ROWS
    for row in table:
        assert row["95% CI low"] <= row["accuracy %"] <= row["95% CI high"], row
    bad = {r["candidate"]: r for r in results["tables"]["bad_input"]}
    assert [k for k, r in bad.items() if r["counted correct"]] == ["reference solution"]
    hostile = ["empty generation", "no parsable answer", "hostile power", "hostile import"]
    assert all(bad["reference solution"]["total"] < bad[k]["total"] for k in hostile)
    return {r["method"]: r for r in table}


def check_across_models(results):
    table = results["tables"]["table3_across_models"]
    methods = [r["method"] for r in table]
    assert sum("alone, greedy" in m for m in methods) == 2
    assert sum("alone over the joint pool" in m for m in methods) == 5
    assert any(m.startswith("PIC (weights from train), 1 round") for m in methods)
    assert sum("oracle" in m for m in methods) == 3
    for row in table:
        assert row["95% CI low"] <= row["accuracy %"] <= row["95% CI high"], row
    claims = results["tables"]["claims"]
    assert [c["claim"].split(" (")[0] for c in claims][:2] == ["at least 150 test problems", "the best PIC row"]
    return {r["method"]: r for r in table}


def test_a_smoke_run_fills_every_row_of_the_paper_analog_table(tmp_path):
    results = run_smoke("31_gsm8k", tmp_path)
    check_paper_analog(results)
    assert (results["folder"] / "accuracy_vs_rounds_and_candidates.png").exists()


def test_a_smoke_run_fills_every_row_of_the_cross_model_table(tmp_path):
    results = run_smoke("33_gsm8k_consensus", tmp_path)
    check_across_models(results)
    assert (results["folder"] / "accuracy_vs_candidates_and_rounds.png").exists()


@pytest.mark.parametrize("notebook", ["31_gsm8k", "33_gsm8k_consensus"])
def test_the_committed_local_runs_are_on_the_pinned_path_with_intervals(notebook):
    results = json.loads((ROOT / "figures" / notebook / "results.json").read_text())
    assert results["meta"]["profile"] == "local" and results["meta"]["numerics"]["dtype"] == "float32"
    assert results["meta"]["numerics"]["MKL_CBWR"] == "AVX2,STRICT"
    if notebook == "31_gsm8k":
        rows = check_paper_analog(results)
        paper = {r["paper setting"]: r["paper %"] for r in rows.values() if r["paper %"] is not None}
        assert paper == {"GPT-2-M, BS=5": 12.2, "GPT-2-M fine-tuned, BS=5": 18.3, "GPT-2-M + classifier, BS=1": 16.8,
                         "GPT-2-M + classifier, BS=5": 20.8}
    else:
        check_across_models(results)
        assert results["meta"]["parameters"]["n_problems"] >= 150
