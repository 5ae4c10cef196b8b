"""The rendered site, as a reader sees it: `make html`'s build, every page loaded in headless Chromium.

Every figure loads, every formula is typeset (MathJax served locally), nothing is fetched from the network, every
link inside the site lands on a page and anchor that exist, and no page shows a traceback, a stored warning or a
path of the machine that ran it. The checks are shown to fail on a site broken on purpose (a stored warning, a
raw `$`, a missing figure file, a figure link to nothing). Skips only where no headless Chromium is installed
(`make install` installs Debian's chromium-headless-shell as root).
"""
from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from chromium import Chromium, find_binary

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "build" / "html"
SCREENSHOT = ROOT / "build" / "site-index.png"
MACHINE_PATH = re.compile(r"/root/|/home/|/tmp/|site-packages|\.venv/")
WARNING = re.compile(r"\b[A-Z]\w*Warning\b")
TRACEBACK = re.compile(r"Traceback \(most recent call last\)")
RAW_MATH = re.compile(r"\$[^$\n]+\$")

pytestmark = pytest.mark.skipif(find_binary() is None, reason=(
    "no headless Chromium: `make install` installs Debian's chromium-headless-shell (as root), or run "
    "`apt-get install chromium-headless-shell`"))

# Runs in each page once it has loaded: waits for MathJax and the images, then reports what a reader would see.
CHECK_PAGE = r"""(async () => {
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  const maths = [...document.querySelectorAll('.math')];
  if (maths.length) {
    for (let t = 0; t < 200 && !(window.MathJax && MathJax.startup && MathJax.startup.promise); t++) await sleep(50);
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  }
  const images = [...document.images];
  await Promise.all(images.map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })));
  const main = document.querySelector('article') || document.body;
  const outputs = [...main.querySelectorAll('.cell_output, .output')];
  const prose = main.cloneNode(true);
  prose.querySelectorAll('pre, code, .math, mjx-container, script, style, .cell_output, .output')
       .forEach(e => e.remove());
  return {
    title: document.title,
    images: images.map(i => ({src: i.getAttribute('src'), width: i.naturalWidth, height: i.naturalHeight})),
    maths: maths.length,
    typeset: maths.filter(m => m.querySelector('mjx-container')).length,
    mathjax: !!(window.MathJax && MathJax.version),
    prose: prose.textContent,
    outputs: outputs.map(o => o.innerText),
    tracebacks: main.querySelectorAll('.traceback, .output.error').length,
    solutions: [...main.querySelectorAll('.cell.tag_hide-cell')].map(c => {
      const d = c.querySelector('details'), code = c.querySelector('.cell_input');
      // a closed <details> keeps its content's boxes in Chromium, so ask whether it is visible
      return {collapsed: !!d && !d.open, shown: !!code && code.checkVisibility()};
    }),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    ids: [...document.querySelectorAll('[id]')].map(e => e.id),
    fetched: [...document.querySelectorAll('script[src], link[rel~=stylesheet][href], img[src], iframe[src]')]
               .map(e => e.src || e.href),
  };
})()"""


def sphinx_command(out: Path) -> list[str]:
    """The Makefile's `html` recipe (one source for how the site is built), pointed at `out`."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^html:.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    line = next(x for x in recipe.splitlines() if "-m sphinx" in x)
    args = shlex.split(line.strip().replace("$(PY)", shlex.quote(sys.executable)))
    return [str(out) if a == "build/html" else a for a in args]


def build(source: Path, out: Path) -> subprocess.CompletedProcess:
    shutil.rmtree(out, ignore_errors=True)
    return subprocess.run(sphinx_command(out), cwd=source, capture_output=True, text=True)


def pages(site: Path) -> list[Path]:
    """Every page of the site but Sphinx's own (_static, _sources, ...) and the forwarding index.html."""
    return sorted(p for p in site.rglob("*.html")
                  if not any(part.startswith("_") for part in p.relative_to(site).parts) and p != site / "index.html")


def visit(site: Path, screenshot: Path | None = None) -> dict[str, dict]:
    """page (relative to the site) -> what CHECK_PAGE reports of it."""
    seen = {}
    with Chromium() as browser:
        for page in pages(site):
            seen[page.relative_to(site).as_posix()] = browser.open(page.as_uri(), CHECK_PAGE)
        if screenshot is not None:
            browser.open((site / "docs" / "index.html").as_uri(), CHECK_PAGE)
            browser.screenshot(screenshot)
    return seen


def problems(site: Path, seen: dict[str, dict]) -> dict[str, list[str]]:
    """What a reader would trip on, per kind: each entry names the page."""
    found = {"figure": [], "math": [], "raw $": [], "offline": [], "link": [], "traceback": [], "warning": []}
    ids = {page: set(report["ids"]) for page, report in seen.items()}
    for page, report in seen.items():
        for image in report["images"]:
            if not image["width"] or not image["height"]:
                found["figure"].append(f"{page}: image {image['src']} does not load")
        if report["maths"] and (not report["mathjax"] or report["typeset"] < report["maths"]):
            found["math"].append(f"{page}: {report['typeset']} of {report['maths']} formulas typeset")
        for raw in RAW_MATH.findall(report["prose"]):
            found["raw $"].append(f"{page}: {raw!r} left as text")
        for url in report["fetched"]:
            if not url.startswith(("file:", "data:")):
                found["offline"].append(f"{page}: fetches {url}")
        for url in report["links"]:
            if url.startswith("file:"):
                found["link"] += broken_link(site, page, url, ids)
        if report["tracebacks"]:
            found["traceback"].append(f"{page}: {report['tracebacks']} error output(s)")
        for text in report["outputs"]:
            if TRACEBACK.search(text):
                found["traceback"].append(f"{page}: {text[:200]!r}")
            for line in text.splitlines():
                if WARNING.search(line) or MACHINE_PATH.search(line):
                    found["warning"].append(f"{page}: {line[:200]!r}")
    return found


def broken_link(site: Path, page: str, url: str, ids: dict[str, set]) -> list[str]:
    parts = urlsplit(url)
    target = Path(unquote(parts.path))
    if not target.exists():
        return [f"{page}: link to {url} (no such file)"]
    if target.is_dir() or not parts.fragment or target.suffix != ".html":
        return []
    key = target.relative_to(site).as_posix() if target.is_relative_to(site) else None
    if key in ids and parts.fragment not in ids[key]:
        return [f"{page}: link to {url} (no such anchor)"]
    return []


@pytest.fixture(scope="module")
def site():
    start = time.perf_counter()
    done = build(ROOT, SITE)
    built = time.perf_counter() - start
    assert done.returncode == 0, f"`make html` fails (Sphinx warnings are errors):\n{done.stderr[-3000:]}"
    seen = visit(SITE, SCREENSHOT)
    print(f"site built in {built:.1f} s, {len(seen)} pages checked in {time.perf_counter() - start - built:.1f} s")
    return seen, problems(SITE, seen)


def test_every_committed_notebook_readme_and_method_page_is_a_page_of_the_site(site):
    seen, _ = site
    notebooks = {f"notebooks/{p.stem}.html" for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    assert notebooks and notebooks <= set(seen)
    assert {"README.html", "docs/index.html", "docs/method.html"} <= set(seen)
    assert SCREENSHOT.stat().st_size > 10_000  # the landing page, kept for people to look at
    forward = (SITE / "index.html").read_text()
    assert re.search(r'url=docs/index\.html', forward) and (SITE / "docs" / "index.html").exists()


def test_every_figure_loads_and_every_formula_is_typeset_offline(site):
    seen, found = site
    assert sum(len(r["images"]) for r in seen.values()) >= len(seen) // 2  # the notebooks' figures are there
    assert sum(r["maths"] for r in seen.values()) > 0
    assert not found["figure"] + found["math"] + found["raw $"] + found["offline"], found


def test_every_link_inside_the_site_lands_on_a_page_and_anchor_that_exist(site):
    _, found = site
    assert not found["link"], found["link"]


def test_every_exercise_solution_is_on_its_page_collapsed(site):
    seen, _ = site
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        tagged = sum("hide-cell" in c.get("metadata", {}).get("tags", []) for c in cells)
        solutions = seen[f"notebooks/{path.stem}.html"]["solutions"]
        assert len(solutions) == tagged, f"{path.name}: {tagged} hidden cells, {len(solutions)} on its page"
        assert all(s["collapsed"] and not s["shown"] for s in solutions), f"{path.name}: a solution shows open"


def test_no_page_shows_a_traceback(site):
    _, found = site
    assert not found["traceback"], found["traceback"]


def test_no_page_shows_a_stored_warning_or_a_path_of_the_machine_that_ran_it(site):
    _, found = site
    assert not found["warning"], found["warning"]


def test_the_checks_catch_a_stored_warning_a_raw_dollar_and_a_broken_figure(tmp_path):
    """A one-notebook copy of the site, broken on purpose: each break is reported, naming the page."""
    source = small_site(tmp_path, extra_cells=[
        {"cell_type": "markdown", "metadata": {}, "source": "A formula left as text: \\$x^2 + 1\\$."},
        {"cell_type": "code", "metadata": {}, "execution_count": 1, "source": "import thing", "outputs": [
            {"output_type": "stream", "name": "stderr",
             "text": "/home/someone/.venv/lib/python3.11/site-packages/thing.py:3: UserWarning: careful\n"}]}])
    out = tmp_path / "html"
    done = build(source, out)
    assert done.returncode == 0, done.stderr
    image = next((out / "_images").iterdir())
    image.unlink()  # a figure whose file is gone
    found = problems(out, visit(out))
    assert any("UserWarning" in p and "notebooks/00_copy.html" in p for p in found["warning"]), found
    assert any("$x^2 + 1$" in p for p in found["raw $"]), found
    assert any(image.name in p for p in found["figure"]), found


def test_a_figure_link_to_nothing_fails_the_build(tmp_path):
    source = small_site(tmp_path, extra_cells=[
        {"cell_type": "markdown", "metadata": {}, "source": "![a figure](../figures/none/missing.png)"}])
    done = build(source, tmp_path / "html")
    assert done.returncode != 0 and "missing.png" in done.stderr


def small_site(tmp_path: Path, extra_cells: list[dict]) -> Path:
    """The site's sources (docs/) with one notebook: the quickstart's first cells (math, a figure) + extra_cells."""
    source = tmp_path / "repo"
    shutil.copytree(ROOT / "docs", source / "docs")
    (source / "docs" / "method.md").write_text("# Method\n")
    (source / "docs" / "index.md").write_text("# Index\n\n```{toctree}\n:glob:\n\n/README\nmethod\n"
                                              "/notebooks/[0-9][0-9]_*\n```\n")
    (source / "README.md").write_text("# README\n")
    nb = json.loads((ROOT / "notebooks" / "00_quickstart.ipynb").read_text())
    with_figure = next(i for i, c in enumerate(nb["cells"])
                       if any("image/png" in o.get("data", {}) for o in c.get("outputs", [])))
    nb["cells"] = [c for c in nb["cells"][: with_figure + 1] if not _stores_warning(c)] + extra_cells
    (source / "notebooks").mkdir()
    (source / "notebooks" / "00_copy.ipynb").write_text(json.dumps(nb))
    return source


def _stores_warning(cell: dict) -> bool:
    return any(o.get("name") == "stderr" for o in cell.get("outputs", []))
