"""The quickstart's claims hold in a fresh smoke run, and in the committed local results."""
import json
import os
from pathlib import Path

import papermill

ROOT = Path(__file__).resolve().parents[1]


def claims(results):
    return {r["claim"]: r["holds"] for r in results["tables"]["claims"]}


def test_a_smoke_run_writes_its_tables_and_its_claims_hold(tmp_path):
    papermill.execute_notebook(str(ROOT / "notebooks" / "00_quickstart.ipynb"), str(tmp_path / "out.ipynb"),
                               parameters={"profile": "smoke", "seed": 1}, kernel_name="python3",
                               cwd=str(ROOT / "notebooks"), progress_bar=False)
    out = Path(os.environ["PIC_FIGURES_DIR"]) / "00_quickstart" / "runs" / "smoke-seed=1"  # not the committed folder
    results = json.loads((out / "results.json").read_text())
    assert results["meta"]["profile"] == "smoke" and results["meta"]["seed"] == 1
    rows = {r["method"]: r for r in results["tables"]["consensus_distance"]}
    assert rows["guidance + MALA"]["sliced_w1"] < rows["guidance (plain sum)"]["sliced_w1"]
    assert all(claims(results).values()), claims(results)


def test_the_committed_local_results_show_mcmc_closer_and_the_composition_better():
    results = json.loads((ROOT / "figures" / "00_quickstart" / "results.json").read_text())
    assert results["meta"]["profile"] == "local"
    rows = {r["method"]: r for r in results["tables"]["consensus_distance"]}
    floor = rows["exact samples of the product"]["sliced_w1"]
    assert rows["guidance + MALA"]["sliced_w1"] < 2 * floor < rows["guidance (plain sum)"]["sliced_w1"]
    assert all(claims(results).values()), claims(results)
