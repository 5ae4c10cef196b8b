"""Every notebook output is reproducible: figures without timestamps, tables as CSV/JSON, a results.json."""
import json

import matplotlib.pyplot as plt
import pytest

from pic.report import ProfileError, Report, format_table, profile_settings


def test_figures_are_byte_identical_across_saves(tmp_path):
    report = Report("nb", "local", 0, {})
    digests = []
    for _ in range(2):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        paths = report.save_fig(fig, "line")
        plt.close(fig)
        digests.append([p.read_bytes() for p in paths])
    assert [p.suffix for p in paths] == [".pdf", ".png"] and digests[0] == digests[1]


def test_tables_are_written_in_full_precision_and_printed_rounded():
    report = Report("nb", "local", 3, {"n": 5})
    text = report.table("scores", [{"method": "a", "acc": 0.123456, "tiny": -1e-9}, {"method": "b", "acc": float("nan"), "tiny": 2}])
    assert "0.123" in text and "0.1234" not in text and "-0.000" not in text and "n/a" in text
    assert json.loads((report.dir / "scores.json").read_text())[0]["acc"] == 0.123456
    assert "0.123456" in (report.dir / "scores.csv").read_text()
    results = json.loads(report.write().read_text())
    assert set(results) == {"meta", "tables"} and results["tables"]["scores"][1]["acc"] is None
    assert {"profile", "seed", "parameters", "seconds", "versions"} <= set(results["meta"])
    assert results["meta"]["parameters"] == {"n": 5} and "torch" in results["meta"]["versions"]


def test_only_the_local_profile_writes_to_the_committed_folder():
    assert Report("nb", "local", 0, {}).dir.name == "nb"
    assert Report("nb", "smoke", 0, {}).dir.parts[-2:] == ("nb", "smoke")


def test_an_unknown_profile_is_refused():
    with pytest.raises(ProfileError, match=r"unknown profile 'fast'; choose one of \['smoke', 'local', 'paper'\]"):
        Report("nb", "fast", 0, {})


def test_profile_settings_take_given_values_over_the_profiles_defaults():
    table = {"smoke": {"n": 1, "k": 2}, "local": {"n": 10, "k": 20}, "paper": {"n": 100, "k": 200}}
    assert profile_settings("local", table, n=None, k=3) == {"n": 10, "k": 3}
    with pytest.raises(KeyError, match="'m'"):
        profile_settings("local", table, m=1)


def test_format_table_is_stable_under_tiny_float_noise():
    a = format_table([{"x": 0.30000000000000004}])
    b = format_table([{"x": 0.3}])
    assert a == b


def test_claims_are_printed_once_as_holds_or_fails_with_their_numbers():
    report = Report("nb", "local", 0, {})
    text = report.claims([{"claim": "ensemble beats A", "holds": True, "gap": 0.12345},
                          {"claim": "ensemble beats B", "holds": False}])
    assert text.splitlines() == ["HOLDS  ensemble beats A  (gap 0.123)", "FAILS  ensemble beats B"]
    assert json.loads((report.dir / "claims.json").read_text())[0] == {"claim": "ensemble beats A", "holds": True,
                                                                      "gap": 0.12345}
    assert report.claims({"x": 1}, name="other") == "HOLDS  x"


def test_a_run_with_changed_parameters_never_writes_into_the_committed_folder(tmp_path, monkeypatch):
    import nbformat

    from pic import report as report_module

    cell = nbformat.v4.new_code_cell('profile = "local"  # p\nseed = 0\nn: int = None  # rows\n')
    cell.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook()
    nb.cells = [cell]
    (tmp_path / "notebooks").mkdir()
    nbformat.write(nb, tmp_path / "notebooks" / "07_x.ipynb")
    monkeypatch.setattr(report_module, "ROOT", tmp_path)
    committed = Report.start("07_x", {"profile": "local", "seed": 0, "n": None})
    assert committed.dir.name == "07_x" and committed.overrides == {}
    other = Report.start("07_x", {"profile": "local", "seed": 3, "n": None}, extra=1)
    assert other.dir.parts[-3:] == ("07_x", "runs", "local-seed=3") and other.parameters["extra"] == 1
    assert Report.start("07_x", {"profile": "smoke", "seed": 0, "n": None}).dir.parts[-2:] == ("07_x", "smoke")
    # an annotated parameter (`n: int = None`) is a parameter too: changing it is a different run
    changed = Report.start("07_x", {"profile": "local", "seed": 0, "n": 5})
    assert changed.overrides == {"n": 5} and changed.dir.parts[-2:] == ("runs", "local-n=5")
    results = json.loads(other.write().read_text())["meta"]
    assert results["overrides"] == {"seed": 3} and results["threads"] >= 1 and results["dtype"] == "float32"
