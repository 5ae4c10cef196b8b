"""The notebook runner checks parameters before running anything and names the notebook and cell that failed."""
import os
import re
import time

import nbformat
import pytest

from pic import reproduce
from pic.reproduce import ParameterError, validate

PARAMS = ('profile = "local"  # smoke, local or paper\nseed = 0\nn_samples = 100\nscale = 1.5\nname = "x"\n'
          'limit: int = None  # None for the profile default\n')


def make_notebook(folder, filename, params=PARAMS, body="print(profile, seed)"):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell(body)]
    path = folder / filename
    nbformat.write(nb, path)
    return path


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "notebooks").mkdir()
    monkeypatch.setattr(reproduce, "ROOT", tmp_path)
    monkeypatch.setattr(reproduce, "NOTEBOOKS", tmp_path / "notebooks")
    monkeypatch.setattr(reproduce, "BUILD", tmp_path / "build")
    return tmp_path


def test_valid_overrides_pass_and_ints_are_accepted_for_floats(project):
    nb = make_notebook(project / "notebooks", "01_a.ipynb")
    assert validate(nb, {"profile": "smoke", "scale": 2, "n_samples": 5, "limit": 7}) == {
        "profile": "smoke", "scale": 2, "n_samples": 5, "limit": 7}


def test_an_unknown_parameter_names_the_notebook_and_lists_the_known_ones(project):
    nb = make_notebook(project / "notebooks", "01_a.ipynb")
    with pytest.raises(ParameterError, match=r"01_a.ipynb has no parameter 'n_sample'; it declares \["):
        validate(nb, {"n_sample": 5})


@pytest.mark.parametrize("name, value", [("n_samples", 2.5), ("n_samples", "many"), ("seed", True), ("name", 3),
                                         ("limit", "abc"), ("limit", 2.5)])
def test_a_parameter_of_the_wrong_type_is_an_error(project, name, value):
    nb = make_notebook(project / "notebooks", "01_a.ipynb")
    with pytest.raises(ParameterError, match=f"parameter '{name}' is"):
        validate(nb, {name: value})


def test_an_unknown_profile_is_an_error_before_anything_runs(project, capsys):
    make_notebook(project / "notebooks", "01_a.ipynb", body="raise RuntimeError('must not run')")
    assert reproduce.main(["--profile", "huge"]) == 2
    assert "unknown profile 'huge'" in capsys.readouterr().err


def test_a_notebook_without_profile_and_seed_parameters_is_refused(project):
    nb = make_notebook(project / "notebooks", "01_a.ipynb", params="n = 1\n")
    with pytest.raises(ParameterError, match="must declare `profile` and `seed`"):
        validate(nb, {})


def test_a_parameters_line_papermill_cannot_parse_is_an_error_not_a_warning(project):
    nb = make_notebook(project / "notebooks", "01_a.ipynb", params=PARAMS + "x = 1  # x = y\n")
    with pytest.raises(ParameterError, match=r"cannot parse the parameters \['x'\]"):
        validate(nb, {})


def test_a_parameter_defaulting_to_none_needs_a_type(project):
    nb = make_notebook(project / "notebooks", "01_a.ipynb", params=PARAMS + "n_rows = None  # rows\n")
    with pytest.raises(ParameterError, match=r"parameters \['n_rows'\] default to None without a type"):
        validate(nb, {})


def test_selection_by_number_and_training_notebooks_apart(project):
    for name in ["00_a.ipynb", "01_b.ipynb", "02_train_c.ipynb", "11_d.ipynb", "10_train_e.ipynb"]:
        make_notebook(project / "notebooks", name)
    assert [p.name for p in reproduce.select([], training=False)] == ["00_a.ipynb", "01_b.ipynb", "11_d.ipynb"]
    assert [p.name for p in reproduce.select([], training=True)] == ["02_train_c.ipynb", "10_train_e.ipynb"]
    assert [p.name for p in reproduce.select(["01", "1"], training=False)] == ["01_b.ipynb", "11_d.ipynb"]
    assert [p.name for p in reproduce.select(["1"], training=True)] == ["10_train_e.ipynb"]
    with pytest.raises(SystemExit, match="no notebook matches"):
        reproduce.select(["07"], training=False)


def test_a_number_never_selects_a_training_notebook_without_train(project):
    make_notebook(project / "notebooks", "02_train_c.ipynb", body="raise RuntimeError('must not run')")
    with pytest.raises(SystemExit, match=r"\['02'\] is a training notebook: .* only with --train"):
        reproduce.main(["02"])


def test_a_failing_notebook_is_named_with_its_cell_and_kept(project):
    nb = make_notebook(project / "notebooks", "03_boom.ipynb", body="raise ValueError('bad scale')")
    original = nb.read_bytes()
    with pytest.raises(SystemExit, match=r"FAILED notebooks/03_boom.ipynb: cell 2 .*ValueError: bad scale"):
        reproduce.main(["03"])
    assert (project / "build" / "failed" / "03_boom.ipynb").exists()
    assert nb.read_bytes() == original  # the committed notebook is untouched by a failed run


def test_a_successful_local_run_executes_in_place_and_other_profiles_go_to_build(project):
    nb = make_notebook(project / "notebooks", "00_ok.ipynb")
    assert reproduce.main(["00", "--profile", "smoke", "-p", "seed=3"]) == 0
    out = nbformat.read(project / "build" / "runs" / "smoke-seed=3" / "00_ok.ipynb", as_version=4)
    assert out.cells[-1].outputs[0]["text"] == "smoke 3\n"
    assert reproduce.main(["00"]) == 0
    assert nbformat.read(nb, as_version=4).cells[-1].outputs[0]["text"] == "local 0\n"


def test_a_profile_given_as_a_parameter_never_overwrites_the_committed_notebook(project):
    nb = make_notebook(project / "notebooks", "00_ok.ipynb")
    original = nb.read_bytes()
    assert reproduce.main(["00", "-p", "profile=smoke"]) == 0
    assert nb.read_bytes() == original
    out = nbformat.read(project / "build" / "smoke" / "00_ok.ipynb", as_version=4)
    assert out.cells[-1].outputs[0]["text"] == "smoke 0\n"


def test_a_local_run_with_other_parameters_goes_to_its_own_folder(project):
    nb = make_notebook(project / "notebooks", "00_ok.ipynb")
    original = nb.read_bytes()
    assert reproduce.main(["00", "-p", "seed=5"]) == 0
    assert nb.read_bytes() == original
    out = nbformat.read(project / "build" / "runs" / "local-seed=5" / "00_ok.ipynb", as_version=4)
    assert out.cells[-1].outputs[0]["text"] == "local 5\n"
    assert reproduce.main(["00", "-p", "seed=0"]) == 0  # the default value: the committed run, in place
    assert nbformat.read(nb, as_version=4).cells[-1].outputs[0]["text"] == "local 0\n"


def test_train_retrains_in_place_unless_told_to_load_the_committed_checkpoints(project):
    params = PARAMS + "retrain = False  # True: train the checkpoints again\n"
    nb = make_notebook(project / "notebooks", "10_train_x.ipynb", params=params, body="print(profile, retrain)")
    assert reproduce.main(["--train", "10"]) == 0
    assert nbformat.read(nb, as_version=4).cells[-1].outputs[0]["text"] == "local True\n"
    assert reproduce.main(["--train", "10", "-p", "retrain=False"]) == 0
    assert nbformat.read(nb, as_version=4).cells[-1].outputs[0]["text"] == "local False\n"


WRITE_RESULTS = ("import json, os, pathlib\n"
                 "out = pathlib.Path(os.environ['PIC_FIGURES_DIR']) / NAME\n"
                 "out.mkdir(parents=True, exist_ok=True)\n"
                 "(out / 'results.json').write_text(json.dumps({'meta': {'notebook': NAME}, 'tables': {}}))\n")


def results_of(name):
    import json
    import os
    from pathlib import Path

    return json.loads((Path(os.environ["PIC_FIGURES_DIR"]) / name / "results.json").read_text())


def test_a_run_records_its_wall_time_and_its_kernels_peak_memory_in_results_json(project):
    # 00 holds 400 MB, then 01 holds 150 MB: 01 sets no new high, so its peak comes from watching its kernel;
    # each holds it for a second (a real notebook holds its memory for minutes; the runner polls every 0.2 s)
    for name, mb in (("00_big", 400), ("01_small", 150)):
        body = f"NAME = {name!r}\nblock = b'x' * ({mb} << 20)\nimport time\ntime.sleep(1)\n" + WRITE_RESULTS
        make_notebook(project / "notebooks", f"{name}.ipynb", body=body)
    assert reproduce.main([]) == 0
    big, small = results_of("00_big")["meta"]["runner"], results_of("01_small")["meta"]["runner"]
    assert big["profile"] == small["profile"] == "local" and big["wall_seconds"] > 0
    assert big["peak_rss_mb"] >= 400 and 150 <= small["peak_rss_mb"] < big["peak_rss_mb"] - 150
    assert big["cores"] == os.cpu_count() and "mean_load" in big  # None: shorter than one 5 s load sample


def test_the_load_sampled_over_a_run_is_its_mean():
    with reproduce.MachineLoad(every=0.05) as load:
        time.sleep(0.3)
    assert load.mean is not None and load.mean >= 0
    with reproduce.MachineLoad(every=60) as quick:
        pass
    assert quick.mean is None


def test_progress_streams_to_the_terminal_and_the_notebook_keeps_nothing_of_the_machine(project, capsys):
    body = ("import tqdm.auto  # warns, with a path of this machine, in a kernel without ipywidgets\n"
            "import time\nimport pic.progress as p\np.LINE_INTERVAL = 0\n"
            "for _ in p.progress(range(4), 'counting'):\n    time.sleep(0.2)\n")
    nb = make_notebook(project / "notebooks", "00_ok.ipynb", body=body)
    assert reproduce.main(["00"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"00_ok \| counting: +100% 4/4 \[\d\d:\d\d<\d\d:\d\d", printed), printed
    executed = nbformat.read(nb, as_version=4)
    assert executed.cells[-1].outputs == []  # no warning, no bar
    assert executed.metadata.papermill.input_path == "notebooks/00_ok.ipynb"
    assert executed.metadata.papermill.output_path == "notebooks/00_ok.ipynb"
    assert not {"start_time", "end_time", "duration"} & set(executed.metadata.papermill)
    assert all(not {"papermill", "execution"} & set(c.metadata) for c in executed.cells)
    assert "note: 00_ok wrote no results.json" in printed
