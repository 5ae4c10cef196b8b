"""The README tells the truth at first sight: its numbers are those of the committed results.json files (one
source), its first screen shows what is reproduced, a figure, the two commands, the results and the site, and the
license and citations it points to exist and agree with pyproject."""
import json
import re
import shutil
import tomllib

import pytest
import yaml

from pic import readme
from pic.assets import ROOT

TEXT = (ROOT / "README.md").read_text()
FIRST_SCREEN = TEXT.split("\n## ", 1)[0]


def test_the_readme_tables_are_generated_from_the_committed_results():
    assert readme.render(TEXT) == TEXT, "README.md disagrees with figures/*/results.json: run `python -m pic.readme`"


@pytest.fixture
def copy(tmp_path):
    """A copy of what the README is generated from: notebooks/ (linked) and figures/*/results.json."""
    (tmp_path / "notebooks").symlink_to(ROOT / "notebooks")
    for path in (ROOT / "figures").glob("*/results.json"):
        (tmp_path / path.parent.relative_to(ROOT)).mkdir(parents=True)
        shutil.copy(path, tmp_path / path.relative_to(ROOT))
    return tmp_path


def edit(copy, notebook, change):
    path = copy / "figures" / notebook / "results.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_a_changed_number_makes_the_readme_out_of_date(copy):
    def worse(data):
        next(r for r in data["tables"]["table1"] if r["row"] == "+ CLIP + CLS + CLS-FREE")["fid"] = 0.5

    edit(copy, "11_image_generation", worse)
    changed = readme.render(TEXT, root=copy)
    assert changed != TEXT and "FID 0.50 vs 1.44" in changed


def test_a_renamed_table_is_an_error_naming_the_notebook_the_table_and_the_fix(copy):
    edit(copy, "31_gsm8k", lambda data: data["tables"].pop("table3"))
    with pytest.raises(readme.ResultsError, match=r"figures/31_gsm8k/results.json has no table 'table3'.*"
                                                  r"pic/readme.py"):
        readme.render(TEXT, root=copy)


def test_the_runners_measures_fill_the_time_and_memory_table(copy):
    def measured(data):
        data["meta"]["runner"] = {"wall_seconds": 125.0, "peak_rss_mb": 2150.4, "profile": "local"}

    edit(copy, "41_robot_manipulation", measured)
    row = next(line for line in readme.render(TEXT, root=copy).splitlines()
               if line.startswith("| [`41_robot_manipulation`]"))
    assert "| 2 min | 2.1 GB |" in row


def test_a_run_that_shared_the_cores_is_marked_as_an_overestimate(copy):
    def measured(data):
        data["meta"]["runner"] = {"wall_seconds": 125.0, "peak_rss_mb": 2150.4, "mean_load": 6.4, "cores": 2,
                                  "profile": "local"}

    edit(copy, "41_robot_manipulation", measured)
    text = readme.render(TEXT, root=copy)
    row = next(line for line in text.splitlines() if line.startswith("| [`41_robot_manipulation`]"))
    assert "2 min † (load 6.4 on 2 cores)" in row and "† run while other jobs shared the cores" in text
    edit(copy, "41_robot_manipulation", lambda data: data["meta"]["runner"].update(mean_load=2.6))
    assert "†" not in next(line for line in readme.render(TEXT, root=copy).splitlines()
                           if line.startswith("| [`41_robot_manipulation`]"))


def test_the_first_screen_shows_what_is_reproduced_a_figure_the_commands_the_results_and_the_site():
    assert "ICLR 2023" in FIRST_SCREEN and "2210.11522" in FIRST_SCREEN
    figures = re.findall(r"!\[[^\]]+\]\(([^)]+\.png)\)", FIRST_SCREEN)
    assert figures and all((ROOT / f).exists() for f in figures)
    block = re.search(r"```bash\n(.*?)```", FIRST_SCREEN, re.S).group(1)
    assert [line.split("#")[0].strip() for line in block.splitlines()] == ["make reproduce", "make test"]
    assert "<!-- pic.readme:glance -->" in FIRST_SCREEN
    assert "(build/html/index.html)" in FIRST_SCREEN and "make html" in FIRST_SCREEN


def test_license_and_citations_agree_with_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    license_text = (ROOT / "LICENSE").read_text()
    assert project["license"]["text"] == "MIT" and license_text.startswith("MIT License")
    assert "Copyright (c) 2026 the pic authors" in license_text
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT" and cff["version"] == project["version"]
    paper = cff["references"][0]
    assert [a["family-names"] for a in paper["authors"]] == ["Li", "Du", "Tenenbaum", "Torralba", "Mordatch"]
    bibtex = re.search(r"```bibtex\n(.*?)```", TEXT, re.S).group(1)
    assert "eprint        = {2210.11522}" in bibtex and "year          = {2023}" in bibtex
    assert re.search(r"author\s*= \{Li, Shuang and Du, Yilun and Tenenbaum, Joshua B\. and Torralba, Antonio and "
                     r"Mordatch, Igor\}", bibtex)
