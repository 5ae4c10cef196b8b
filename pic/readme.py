"""The README's numbers, generated from the committed runs: `python -m pic.readme` rewrites the tables between
`<!-- pic.readme:NAME -->` and `<!-- /pic.readme:NAME -->` in README.md; `--check` only says whether they are
up to date (tests/test_readme.py runs it), so a number in the README is always the one in figures/*/results.json.

- glance: one row per experiment, the paper's claim, its numbers there and here, and whether it holds here;
- times: per notebook, the wall time and peak memory of its committed run as the runner recorded them
  (meta.runner, see pic.reproduce);
- results: the longer results-beside-the-paper table;
- commands: one row per table's sharded command (pic.evaluate.TABLES).
The words around the numbers are written here, once per experiment (EXPERIMENTS); a notebook whose tables were
renamed makes this fail with the notebook, table and row it could not find.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pic.assets import ROOT

README = ROOT / "README.md"


class ResultsError(LookupError):
    """A number the README needs is not in the notebook's results.json."""


class Results:
    """A notebook's committed results.json: meta, and rows of its tables looked up by their label columns."""

    def __init__(self, notebook: str, figures: Path):
        self.notebook, self.path = notebook, figures / notebook / "results.json"
        self.name = f"figures/{notebook}/results.json"  # as the error messages show it
        if not self.path.exists():
            raise ResultsError(f"{self.name} is missing: run `python -m pic.reproduce "
                               f"{notebook[:2]}` (it writes the committed run's results)")
        data = json.loads(self.path.read_text())
        self.meta, self.tables = data["meta"], data["tables"]

    def table(self, name: str) -> list[dict]:
        if name not in self.tables:
            raise ResultsError(f"{self.name} has no table {name!r}; it has {sorted(self.tables)}: "
                               "update pic/readme.py's EXPERIMENTS")
        return self.tables[name]

    def row(self, table: str, **match) -> dict:
        """The one row of `table` whose columns equal `match` (keyword = column name)."""
        rows = [r for r in self.table(table) if all(r.get(k) == v for k, v in match.items())]
        if len(rows) != 1:
            labels = [{k: r.get(k) for k in match} for r in self.table(table)]
            raise ResultsError(f"{self.name}: table {table!r} has {len(rows)} rows with {match} "
                               f"(want 1); its rows: {labels}: update pic/readme.py's EXPERIMENTS")
        return rows[0]

    def holds(self, claim: str, table: str = "claims") -> bool:
        return bool(self.row(table, claim=claim)["holds"])


@dataclass(frozen=True)
class Line:
    """What the README says of one experiment: `claim`, `paper` and `here` go to the glance table (short),
    `paper_long` and `here_long` to the results table."""

    experiment: str
    claim: str
    paper: str
    here: str
    holds: str
    paper_long: str
    here_long: str


def _yes(holds: bool) -> str:
    return "yes" if holds else "**no**"


def _quickstart(r: Results) -> Line:
    w1 = lambda method: r.row("consensus_distance", method=method)["sliced_w1"]  # noqa: E731
    mala, plain, floor = w1("guidance + MALA"), w1("guidance (plain sum)"), w1("exact samples of the product")
    single = min(w1(f"scorer {s} alone (+MALA)") for s in "ABC")
    holds = r.holds("guidance + MALA is closer to the product than plain guidance")
    return Line(
        experiment="analytic product of experts (no paper counterpart)",
        claim="guidance + MCMC samples the product; plain summed guidance does not (Du et al. 2023)",
        paper="—", here=f"sliced W1 {mala:.3f} vs {plain:.3f} (sampling floor {floor:.3f})", holds=_yes(holds),
        paper_long="—",
        here_long=f"sliced W1 to the exact product, {r.meta['parameters']['n_seeds']} seeds: guidance + MALA "
                  f"{mala:.3f} (exact samples: {floor:.3f}); plain summed guidance {plain:.3f}; best single scorer "
                  f"{single:.3f}; generator alone {w1('generator alone'):.3f}")


_PAPER_TABLE1 = {"all": (29.184, 34.952, 3.766), "CLS-FREE": (29.219, 25.926, 5.325)}  # FID, IS, KID x 10^3


def _image(r: Results) -> Line:
    row = lambda name: r.row("table1", row=name)  # noqa: E731
    singles = {s: row(f"+ {s}") for s in ("CLIP", "CLS", "CLS-FREE")}
    best = min(singles, key=lambda s: singles[s]["fid"])
    every, mcmc = row("+ CLIP + CLS + CLS-FREE"), row("+ CLIP + CLS + CLS-FREE + MCMC")
    paper_all, paper_best = _PAPER_TABLE1["all"], _PAPER_TABLE1["CLS-FREE"]
    beats_on_kid = [s for s in singles if r.holds(f"all three beat {s} on KID beyond the seed std")]
    beats_on_accuracy = [s for s in singles if r.holds(f"all three beat {s} on class accuracy beyond the seed std")]
    return Line(
        experiment="Table 1 image generation",
        claim="generator + three scorers beats the best single scorer (FID)",
        paper=f"FID {paper_all[0]} vs {paper_best[0]}", here=f"FID {every['fid']:.2f} vs {singles[best]['fid']:.2f}",
        holds=_yes(every["fid"] < singles[best]["fid"]),
        paper_long=f"FID {paper_all[0]} / IS {paper_all[1]} / KID×10³ {paper_all[2]} (GLIDE + CLIP + CLS + "
                   f"CLS-FREE); best single CLS-FREE {paper_best[0]} / {paper_best[1]} / {paper_best[2]}",
        here_long=f"Fashion-MNIST, FID/KID/IS **on our own feature net** (not Inception), "
                  f"{r.meta['parameters']['n_seeds']} seeds, weights chosen on validation: all three scorers FID {every['fid']:.2f}, KID×10³ "
                  f"{every['kid_x1000']:.1f} ± {every['kid_x1000_sd']:.1f}, IS {every['is']:.2f}, class accuracy "
                  f"{every['accuracy']:.2f}; best single ({best}) FID {singles[best]['fid']:.2f}, KID×10³ "
                  f"{singles[best]['kid_x1000']:.1f}; the ensemble beats {_names(beats_on_accuracy)} on accuracy "
                  f"and {_names(beats_on_kid)} on KID beyond the seed std; + MCMC: IS {mcmc['is']:.2f}, accuracy "
                  f"{mcmc['accuracy']:.2f}")


def _names(items: list[str]) -> str:
    return " and ".join(items) if items else "no single scorer"


def _vqa(r: Results) -> Line:
    acc = lambda name: r.row("accuracy", row=name)  # noqa: E731
    singles = {s: acc(f"LM + {s}") for s in ("lit", "cnn", "coarse")}
    best = max(singles, key=lambda s: singles[s]["overall"])
    every = acc("LM + lit + cnn + coarse")
    beats_best = r.holds(f"LM + lit + cnn + coarse beats LM + {best} beyond the seed std")
    n_seeds = r.meta["parameters"]["n_seeds"]
    versus = ", ".join(("beats" if r.holds(f"LM + lit + cnn + coarse beats LM + {s} beyond the seed std") else "ties")
                       + f" LM + {s}" for s in singles)
    return Line(
        experiment="Table 2 video QA",
        claim="an ensemble of scorers beats one scorer (accuracy %)",
        paper="61.2 vs 58.4", here=f"{every['overall']:.1f} vs {singles[best]['overall']:.1f}",
        holds=_yes(beats_best) + ("" if beats_best else " (within the seed std)"),
        paper_long="61.2 (GPT-2 + CLIP-14 + CLIP-multilingual); one scorer 58.4",
        here_long=f"easy-VQA (still images, not ActivityNet-QA), SmolLM2 + **our CLIP-style scorers**, {n_seeds} "
                  f"seeds: LM alone {acc('LM alone')['overall']:.1f}; best single scorer ({best}) "
                  f"{singles[best]['overall']:.1f} ± {singles[best]['overall sd']:.1f}; all three "
                  f"{every['overall']:.1f} ± {every['overall sd']:.1f} ({versus} beyond the seed std); answer-level "
                  f"rerank {acc('answer-level rerank, all scorers')['overall']:.1f}; supervised reference "
                  f"{acc('supervised reference (trained on QA pairs)')['overall']:.1f}")


def _gsm8k(r: Results) -> Line:
    acc = lambda method: r.row("table3", method=method)["accuracy %"]  # noqa: E731
    n = r.meta["parameters"]["n_samples"]
    beam, pic5 = acc("beam search (BS=5)"), acc("PIC, all scorers, 2 rounds, keep 5 (BS=5 analog)")
    pic1 = acc("PIC, all scorers, 2 rounds, keep 1 (BS=1 analog)")
    differences = r.table("paired_differences")
    significant = [d for d in differences if d["comparison"].endswith("minus  greedy decoding (BS=1)")
                   and (d["95% CI low"] > 0 or d["95% CI high"] < 0)]
    return Line(
        experiment="Table 3 GSM8K, the paper's setting",
        claim="PIC (generator + classifier, BS=5) beats beam search (accuracy %)",
        paper="20.8 vs 12.2", here=f"{pic5:.1f} vs {beam:.1f}", holds=_yes(pic5 > beam),
        paper_long="20.8 (GPT-2-M + classifier, BS=5); 16.8 at BS=1; beam 5 alone 12.2",
        here_long=f"{r.meta['parameters']['n_problems']} seeded test problems, SmolLM2-135M, "
                  f"{r.meta['parameters']['max_new_tokens']} new tokens: greedy {acc('greedy decoding (BS=1)'):.1f}, "
                  f"beam 5 {beam:.1f}, LoRA + beam 5 {acc('fine-tuned (LoRA), beam search (BS=5)'):.1f}, "
                  f"self-consistency vote {acc(f'{n} samples + self-consistency vote (agreement alone)'):.1f}, PIC 1 "
                  f"round {acc(f'PIC, all scorers, 1 round ({n} samples)'):.1f}, PIC 2 rounds keep 1 / keep 5 "
                  f"{pic1:.1f} / {pic5:.1f}; any-of-{n} oracle {acc(f'oracle: any of the {n} samples correct'):.1f}; "
                  + ("no row differs significantly from greedy (paired 95% intervals): a 135M generator rarely "
                     "proposes a right answer, so there is little for the scorers to choose" if not significant
                     else f"{len(significant)} row(s) differ significantly from greedy (paired 95% intervals)"))


def _gsm8k_across(r: Results) -> Line:
    rows = {x["method"]: x["accuracy %"] for x in r.table("table3_across_models")}
    greedy = max((m for m in rows if m.endswith("alone, greedy")), key=rows.get)
    strongest = greedy.split(" alone")[0]
    pic = max((m for m in rows if m.startswith("PIC")), key=rows.get)
    interval = r.row("paired_differences", comparison=f"{pic}  minus  {greedy}")
    n = r.meta["parameters"]["n_problems"]
    holds = interval["95% CI low"] > 0
    return Line(
        experiment="Table 3 GSM8K, a consensus of two pre-trained LMs",
        claim="PIC beats its generator alone (accuracy %)",
        paper="20.8 vs 12.2", here=f"{rows[pic]:.1f} vs {rows[greedy]:.1f}",
        holds=_yes(holds) + ("" if holds else " (paired interval includes 0)"),
        paper_long="20.8 (GPT-2-M + classifier, BS=5); beam 5 alone 12.2",
        here_long=f"{n} seeded test problems, Qwen2.5-Coder-0.5B (programs) + SmolLM2-135M (chain of thought) "
                  f"proposing, four scorers with weights chosen on train problems: {strongest} greedy "
                  f"{rows[greedy]:.1f}; {pic} {rows[pic]:.1f} (paired difference {interval['difference (points)']:.1f}"
                  f", 95% CI {interval['95% CI low']:.1f} to {interval['95% CI high']:.1f}); any-candidate oracle "
                  f"{max(v for m, v in rows.items() if m.startswith('oracle')):.1f}")


def _merging(r: Results) -> Line:
    text = {x["method"]: x for x in r.table("text_merging")}
    best = max((m for m in text if m not in ("individual", "joint training")),
               key=lambda m: float(text[m]["normalised %"].split()[0]))
    domains = {x["method"]: x["out-of-domain %"] for x in r.table("domainbed")}
    rata = r.holds("ratatouille (uniform) > uniform soup out of domain", table="claims_domains")
    merge = next(x for x in r.table("claims_multimodal") if x["claim"].startswith("merge ("))
    return Line(
        experiment="Weight-space merging (vl-merging, Model Ratatouille)",
        claim="a good merge beats naive averaging; ratatouille beats model soups",
        paper="merging: holds; ratatouille 68.1 vs 67.6",
        here=f"merge +{merge['gain points']:.1f} points; ratatouille {domains['ratatouille (uniform)'].split()[0]} "
             f"vs {domains['uniform soup'].split()[0]}",
        holds=f"merging: {_yes(merge['holds'])}; ratatouille: {_yes(rata)}",
        paper_long="vl-merging: seed pre-training then RegMean/modality arithmetic beats interpolation; Ratatouille "
                   "(DomainBed average): 68.1 vs uniform soup 67.6",
        here_long=f"{len(r.meta['parameters']['model_seeds'])} model seeds, **our small models**: easy-VQA "
                  f"two-tower merges (after fine-tuning {merge['merge %']:.1f} vs naive {merge['naive %']:.1f}); "
                  f"four MiniLM text tasks, best merge {best} {text[best]['normalised %']} of the individual models "
                  f"(weight averaging {text['weight averaging']['normalised %']}); rotated-digits domains out of "
                  f"domain: ERM {domains['ERM']}, uniform soup {domains['uniform soup']}, ratatouille (uniform) "
                  f"{domains['ratatouille (uniform)']}, ratatouille (greedy) {domains['ratatouille (greedy)']}")


def _robot(r: Results) -> Line:
    def goal(kind: str) -> tuple[dict, dict, dict, dict]:
        rows = [x for x in r.table("success") if x["goal"] == kind]
        equal = [x for x in rows if x["weights"] == "equal"]
        single = max((x for x in equal if x["views"] == 1), key=lambda x: x["success"])
        summed = max(equal, key=lambda x: x["views"])
        weighted = next(x for x in rows if x["weights"] == "validation")
        random_row = next(x for x in rows if x["views"] == 0)
        return random_row, single, summed, weighted

    def paired(kind: str, rows: tuple) -> str:
        p = r.row("paired", goal=kind, first=rows[3]["scorers"], second=rows[1]["scorers"])
        return (f"paired difference {p['difference']:+.2f}, 95% CI {p['diff_ci95_low']:+.2f} to "
                f"{p['diff_ci95_high']:+.2f}")

    def verdict(kind: str, rows: tuple) -> str:
        low = r.row("paired", goal=kind, first=rows[3]["scorers"], second=rows[1]["scorers"])["diff_ci95_low"]
        if not holds[kind]:
            return _yes(False)
        return "yes" if low > 0 else f"in direction only ({paired(kind, rows)})"

    text, image = goal("text"), goal("image")
    pct = lambda x: f"{100 * x['success']:.0f}%"  # noqa: E731
    holds = {kind: r.holds(f"{kind} goals: all views with the validation weights ({rows[3]['scorers']}) beat the "
                           f"best single view ({rows[1]['scorers']})") for kind, rows in (("text", text),
                                                                                        ("image", image))}
    return Line(
        experiment="Table 4 robot manipulation",
        claim="scorers on several views beat one view (success)",
        paper="holds (no numbers recovered)",
        here=f"text goals {pct(text[3])} vs {pct(text[1])}; image goals {pct(image[3])} vs {pct(image[1])}",
        holds=f"text: {verdict('text', text)}; image: {verdict('image', image)}",
        paper_long="several views beat one (no numbers recovered)",
        here_long=f"pybullet, Kuka arm, 3 cameras, {text[2]['episodes']} episodes per row, view weights chosen on "
                  f"development episodes: text goals (our relation CLIP per camera) random {pct(text[0])}, best "
                  f"single view ({text[1]['scorers']}) {pct(text[1])}, all three {pct(text[2])} with equal weights, "
                  f"{pct(text[3])} with {text[3]['scorers']} ({paired('text', text)}); image goals "
                  f"(EfficientNet-Lite0 feature distance) best single view ({image[1]['scorers']}) {pct(image[1])}, "
                  f"all three {pct(image[2])} with equal weights, {pct(image[3])} with {image[3]['scorers']} "
                  f"({paired('image', image)})"
                  + ("" if holds["image"] else f": {image[1]['scorers']} alone is the sharpest view of the 3 cm "
                                               "goal precision, and no weighting swept on validation lets the other "
                                               "views add to it"))


# notebook -> the words around its numbers; one row of the glance and results tables each
EXPERIMENTS: dict[str, Callable[[Results], Line]] = {
    "00_quickstart": _quickstart,
    "11_image_generation": _image,
    "21_visual_qa": _vqa,
    "31_gsm8k": _gsm8k,
    "33_gsm8k_consensus": _gsm8k_across,
    "41_robot_manipulation": _robot,
    "51_model_merging": _merging,
}


def _link(notebook: str) -> str:
    return f"[`{notebook}`](notebooks/{notebook}.ipynb)"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in rows])


def glance_table(lines: dict[str, Line]) -> str:
    return _table(["experiment", "the paper's claim", "paper", "here", "holds here"],
                  [[f"{x.experiment} ({_link(nb)})", x.claim, x.paper, x.here, x.holds] for nb, x in lines.items()])


def results_table(lines: dict[str, Line]) -> str:
    return _table(["experiment", "paper", "here", "notebook"],
                  [[x.experiment, x.paper_long, x.here_long, _link(nb)] for nb, x in lines.items()])


def commands_table() -> str:
    """One row per table's command (pic.evaluate.TABLES): its notebook, the file rank 0 writes, its unit of work."""
    from pic.evaluate import TABLES

    return _table(["notebook", "command", "writes under OUT", "unit of work (seeded by itself)"],
                  [[_link(t.notebook), f"`-m pic.evaluate {name}`", f"`records.rank<r>.jsonl`, `{t.file}`", t.unit]
                   for name, t in TABLES.items()])


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def notebook_title(path: Path) -> str:
    """The notebook's first markdown heading, without its 'NN · ' prefix."""
    cells = json.loads(path.read_text())["cells"]
    text = next(("".join(c["source"]) for c in cells if c["cell_type"] == "markdown"), "")
    heading = next((line for line in text.splitlines() if line.startswith("# ")), f"# {path.stem}")
    return re.sub(r"^#\s+\d\d\s*·\s*", "", heading).lstrip("# ").strip()


def loaded(runner: dict) -> bool:
    """True when a run shared the machine: its mean load was more than one above the cores (a notebook's own
    threads use the cores it is given; more waiting work means other jobs ran beside it)."""
    return runner.get("mean_load") is not None and runner["mean_load"] > (runner.get("cores") or 1) + 1


def times_table(notebooks: list[Path], figures: Path) -> str:
    """Per notebook: what it reproduces, the wall time and peak memory of its committed run (meta.runner)."""
    rows, footnote, shared = [], False, False
    for path in notebooks:
        results = figures / path.stem / "results.json"
        meta = json.loads(results.read_text())["meta"] if results.exists() else None
        runner = (meta or {}).get("runner")
        if runner:
            time_text = _duration(runner["wall_seconds"])
            if loaded(runner):
                time_text += f" † (load {runner['mean_load']:.1f} on {runner['cores']} cores)"
                shared = True
            memory = f"{runner['peak_rss_mb'] / 1024:.1f} GB" if runner.get("peak_rss_mb") else "not measured"
        elif meta and meta.get("seconds") is not None:
            time_text, memory, footnote = f"≈ {_duration(meta['seconds'])} *", "not recorded *", True
        else:
            time_text, memory = "not run", "—"
        retrain = (meta or {}).get("parameters", {}).get("retrain")  # None: a run from before the parameter
        if retrain is not None:
            time_text += (" (trains; checkpoints committed)" if retrain
                          else " (loads the committed checkpoints; `make train` retrains)")
        rows.append([_link(path.stem), notebook_title(path), time_text, memory])
    table = _table(["notebook", "what it reproduces", "`local` run (wall)", "peak memory"], rows)
    if footnote:
        table += ("\n\n\\* recorded before the runner measured runs: the notebook's own timer (from `Report.start` "
                  "to `report.write()`, without the kernel's start and imports), and no memory; `python -m "
                  "pic.reproduce NN` records both.")
    if shared:
        table += ("\n\n† run while other jobs shared the cores (the machine's mean 1-minute load over the run, which "
                  "counts the notebook's own threads): the wall time overstates what the notebook takes alone.")
    return table


def render(readme: str, root: Path = ROOT) -> str:
    """`readme` with every generated table rewritten from the results under root/figures."""
    figures = root / "figures"
    notebooks = sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    lines = {nb: describe(Results(nb, figures)) for nb, describe in EXPERIMENTS.items()
             if (root / "notebooks" / f"{nb}.ipynb").exists()}
    tables = {"glance": glance_table(lines), "times": times_table(notebooks, figures),
              "results": results_table(lines), "commands": commands_table()}
    for name, table in tables.items():
        readme = replace_block(readme, name, table)
    return readme


def replace_block(text: str, name: str, body: str) -> str:
    """Replace what stands between `<!-- pic.readme:name -->` and `<!-- /pic.readme:name -->` with `body`."""
    pattern = re.compile(rf"(<!-- pic\.readme:{name} -->\n)(?:.*?\n)?(<!-- /pic\.readme:{name} -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"README.md has no block <!-- pic.readme:{name} --> ... <!-- /pic.readme:{name} -->: "
                         "put the two markers where the table goes")
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text, count=1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pic.readme", description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if README.md is not up to date; change nothing")
    args = ap.parse_args(argv)
    old = README.read_text()
    try:
        new = render(old)
    except ResultsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.check:
        if new != old:
            print("README.md is out of date with figures/*/results.json: run `python -m pic.readme`", file=sys.stderr)
            return 1
        print("README.md is up to date")
        return 0
    README.write_text(new)
    print("README.md " + ("rewritten" if new != old else "already up to date"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
