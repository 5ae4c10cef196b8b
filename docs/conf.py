"""Sphinx configuration of the companion's site: `make html` renders README.md, docs/*.md and the executed
notebooks (outputs as committed, never re-executed) into build/html, offline.

The source folder is the repository itself (`sphinx-build -c docs . build/html`), so a relative link that works in
the repository works on the site unchanged: README -> notebooks/NN_name.ipynb, a notebook -> ../README.md#layout or
../docs/method.md, an image under figures/, a source file under pic/ (served as a download). Only README.md,
docs/*.md and the numbered notebooks are read; build/html/index.html forwards to the landing page docs/index.html.
"""
project = "pic"
author = "the pic authors"
copyright = "2026, the pic authors"

extensions = ["myst_nb", "sphinx-mathjax-offline"]  # MathJax served from build/html/_static, no network
root_doc = "docs/index"
include_patterns = ["README.md", "docs/*.md", "notebooks/[0-9][0-9]_*.ipynb"]
# pruned while Sphinx walks the repository (.venv may be a link to a whole environment)
exclude_patterns = [".*", "**/.*", "build", "data", "pic", "tests", "benchmarks", "figures", "shared"]

nb_execution_mode = "off"  # the committed outputs are the product; re-executing is `make reproduce`'s job
nb_output_stderr = "show"  # a stored warning stays visible, so tests/test_site.py can catch it
myst_enable_extensions = ["dollarmath"]  # $...$ and $$...$$ in markdown cells and pages
myst_heading_anchors = 3  # README's links to its own sections (#results-beside-the-paper)
# `make html` turns every other warning into an error (a missing figure, a link to nothing); a skipped heading
# level in a notebook is style, not breakage
suppress_warnings = ["myst.header"]

html_theme = "sphinx_book_theme"
html_title = "pic: PIC, runnable"
html_theme_options = {"home_page_in_toc": True, "show_toc_level": 2, "use_download_button": True}
html_last_updated_fmt = None
html_copy_source = True  # the download button serves each notebook as committed
templates_path = ["_templates"]
html_additional_pages = {"index": "forward.html"}  # build/html/index.html -> docs/index.html

# README.md points readers at the built site; inside the site, that link is the landing page
_README_SITE_LINK = ("(build/html/index.html)", "(docs/index.md)")


def _readme_site_link(app, docname, source):
    if docname == "README":
        source[0] = source[0].replace(*_README_SITE_LINK)


def setup(app):
    app.connect("source-read", _readme_site_link)
