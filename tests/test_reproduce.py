"""The notebook runner checks parameters before running anything and names the notebook and cell that failed."""
import nbformat
import pytest

from pic import reproduce
from pic.reproduce import ParameterError, validate

PARAMS = 'profile = "local"  # smoke, local or paper\nseed = 0\nn_samples = 100\nscale = 1.5\nname = "x"\nlimit = None\n'


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


@pytest.mark.parametrize("name, value", [("n_samples", 2.5), ("n_samples", "many"), ("seed", True), ("name", 3)])
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


def test_selection_by_number_and_training_notebooks_apart(project):
    for name in ["00_a.ipynb", "01_b.ipynb", "02_train_c.ipynb"]:
        make_notebook(project / "notebooks", name)
    assert [p.name for p in reproduce.select([], training=False)] == ["00_a.ipynb", "01_b.ipynb"]
    assert [p.name for p in reproduce.select([], training=True)] == ["02_train_c.ipynb"]
    assert [p.name for p in reproduce.select(["01", "02"], training=False)] == ["01_b.ipynb", "02_train_c.ipynb"]
    with pytest.raises(SystemExit, match="no notebook matches"):
        reproduce.select(["07"], training=False)


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
    out = nbformat.read(project / "build" / "smoke" / "00_ok.ipynb", as_version=4)
    assert out.cells[-1].outputs[0]["text"] == "smoke 3\n"
    assert reproduce.main(["00"]) == 0
    assert nbformat.read(nb, as_version=4).cells[-1].outputs[0]["text"] == "local 0\n"
