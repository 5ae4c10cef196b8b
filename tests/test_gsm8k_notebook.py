"""The GSM8K notebook fills every row of Table 3 in a smoke run, and the committed local run covers at least 150
test problems with bootstrap intervals around every accuracy."""
import json
import os
from pathlib import Path

import papermill

ROOT = Path(__file__).resolve().parents[1]
ROWS = 12  # ten methods + one sample + the oracle


def check_tables(results):
    table = results["tables"]["table3"]
    assert len(table) == ROWS
    for row in table:
        assert row["95% CI low"] <= row["accuracy %"] <= row["95% CI high"], row
    bad = {r["candidate"]: r for r in results["tables"]["bad_input"]}
    assert [k for k, r in bad.items() if r["counted correct"]] == ["reference solution"]
    assert min(bad.values(), key=lambda r: r["total"])["candidate"] == "reference solution"
    return {r["method"]: r for r in table}


def test_a_smoke_run_fills_every_row_of_table_3(tmp_path):
    papermill.execute_notebook(str(ROOT / "notebooks" / "31_gsm8k.ipynb"), str(tmp_path / "out.ipynb"),
                               parameters={"profile": "smoke", "seed": 1}, kernel_name="python3",
                               cwd=str(ROOT / "notebooks"), progress_bar=False)
    folder = Path(os.environ["PIC_FIGURES_DIR"]) / "31_gsm8k" / "smoke"
    results = json.loads((folder / "results.json").read_text())
    assert results["meta"]["profile"] == "smoke" and results["meta"]["seed"] == 1
    check_tables(results)
    lines = (folder / "evaluations.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["fingerprint"]["profile"] == "smoke" and len(lines) > 8
    assert (folder / "accuracy_vs_rounds_and_candidates.png").exists()


def test_the_committed_local_run_covers_150_problems_with_intervals():
    results = json.loads((ROOT / "figures" / "31_gsm8k" / "results.json").read_text())
    assert results["meta"]["profile"] == "local" and results["meta"]["parameters"]["n_problems"] >= 150
    rows = check_tables(results)
    paper = {r["paper setting"]: r["paper %"] for r in rows.values() if r["paper %"] is not None}
    assert paper == {"GPT-2-M, BS=5": 12.2, "GPT-2-M fine-tuned, BS=5": 18.3, "GPT-2-M + classifier, BS=1": 16.8,
                     "GPT-2-M + classifier, BS=5": 20.8}
