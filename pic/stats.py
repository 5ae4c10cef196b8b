"""Every spread and interval the tables print, computed one way.

- Over seeds: the mean and the *sample* standard deviation (ddof = 1), `mean_sd` / `summarize`; tables say so
  with SD_NOTE. "Beats beyond the spread" (`beats`) means the gap of the means exceeds the sum of the two sds
  (no overlap of mean ± sd).
- Over items (problems, questions): percentile bootstrap intervals of a mean and of a paired difference
  (scipy.stats.bootstrap, resampling items, seeded).
- Success rates: the Wilson score interval; paired rows: the exact two-sided sign test on the discordant items
  (scipy.stats.binomtest).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import scipy.stats

SD_NOTE = "sd: sample standard deviation over seeds (ddof = 1)"


@dataclass(frozen=True)
class MeanSD:
    mean: float
    sd: float  # NaN for a single value: one seed has no spread
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.3g} ± {self.sd:.2g}"


def mean_sd(values: Iterable[float]) -> MeanSD:
    """Mean and sample standard deviation (ddof = 1) of per-seed values."""
    v = np.asarray(list(values), dtype=float)
    if v.size == 0:
        raise ValueError("mean_sd of no values: every row needs at least one seed")
    return MeanSD(float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else float("nan"), int(v.size))


def summarize(rows: Sequence[dict], by: str | Sequence[str], keys: Sequence[str], scale: float = 1.0,
              sd_suffix: str = "_sd") -> list[dict]:
    """One row per group of `rows` (grouped on the `by` column(s), in first-seen order): the group's columns,
    `seeds` (how many rows), and for each key its mean and sd over the group (columns `key` and `key + sd_suffix`),
    times `scale`. Rows missing a key (or holding None there) are left out of that key's statistics."""
    by = [by] if isinstance(by, str) else list(by)
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[b] for b in by), []).append(r)
    out = []
    for key_values, members in groups.items():
        row = dict(zip(by, key_values), seeds=len(members))
        for k in keys:
            values = [scale * m[k] for m in members if m.get(k) is not None]
            stats = mean_sd(values) if values else MeanSD(float("nan"), float("nan"), 0)
            row[k], row[k + sd_suffix] = stats.mean, stats.sd
        out.append(row)
    return out


def beats(a: float, a_sd: float, b: float, b_sd: float, lower_is_better: bool = False) -> bool:
    """Whether `a` beats `b` by more than the sum of their sds (mean ± sd do not overlap). NaN sds (one seed)
    never count as beating."""
    gap = (b - a) if lower_is_better else (a - b)
    spread = a_sd + b_sd
    return bool(math.isfinite(spread) and gap > spread)


def bootstrap_interval(values: Sequence[float], seed: int = 0, resamples: int = 2000,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over items (resampling items)."""
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        raise ValueError(f"a bootstrap interval needs at least 2 items, got {values.size}")
    if np.all(values == values[0]):  # no spread: scipy warns of a degenerate distribution; the interval is a point
        return float(values[0]), float(values[0])
    ci = scipy.stats.bootstrap((values,), np.mean, n_resamples=resamples, confidence_level=level,
                               method="percentile", rng=np.random.default_rng(seed), vectorized=True).confidence_interval
    return float(ci.low), float(ci.high)


def paired_interval(a: Sequence[float], b: Sequence[float], seed: int = 0, resamples: int = 2000,
                    level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(a - b) over the same items (paired)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same items, got {a.shape} and {b.shape}")
    return bootstrap_interval(a - b, seed, resamples, level)


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a success rate (scipy's); NaN for no trials."""
    if n == 0:
        return float("nan"), float("nan")
    ci = scipy.stats.binomtest(successes, n).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def sign_test(only_a: int, only_b: int) -> float:
    """Exact two-sided sign test p-value on the discordant pairs (items only a solves vs only b solves)."""
    return float(scipy.stats.binomtest(only_a, only_a + only_b).pvalue) if only_a + only_b else 1.0


def rank_correlation(x: Sequence[float], y: Sequence[float], seed: int = 0, resamples: int = 2000,
                     level: float = 0.95) -> tuple[float, float, float]:
    """(Spearman ρ, low, high): ρ of paired items and its percentile bootstrap interval (resampling the pairs)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.size < 3:
        raise ValueError(f"a rank correlation needs at least 3 paired items, got {x.shape} and {y.shape}")
    if np.ptp(x) == 0 or np.ptp(y) == 0:  # a constant column ranks nothing: undefined, said as NaN, not as a warning
        return float("nan"), float("nan"), float("nan")
    rho = float(scipy.stats.spearmanr(x, y).statistic)

    def statistic(a, b):
        with warnings.catch_warnings():  # handled below: no need to warn about each such resample
            warnings.simplefilter("ignore", scipy.stats.ConstantInputWarning)
            r = scipy.stats.spearmanr(a, b).statistic
        return 0.0 if not np.isfinite(r) else r  # a resample with a constant column has no ranking: count it as 0

    ci = scipy.stats.bootstrap((x, y), statistic, paired=True, vectorized=False, n_resamples=resamples,
                               confidence_level=level, method="percentile",
                               rng=np.random.default_rng(seed)).confidence_interval
    return rho, float(ci.low), float(ci.high)


@dataclass(frozen=True)
class LineFit:
    slope: float
    intercept: float
    r2: float  # the share of the variance of y the line explains
    n: int


def fit_line(x: Sequence[float], y: Sequence[float]) -> LineFit:
    """Least-squares line y = slope * x + intercept and its R^2 (e.g. a cost against iterations)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.size < 2 or np.all(x == x[0]):
        raise ValueError(f"a line needs at least 2 paired points with distinct x, got x={x.tolist()}")
    fit = scipy.stats.linregress(x, y)
    return LineFit(float(fit.slope), float(fit.intercept), float(fit.rvalue ** 2) if np.ptp(y) > 0 else 1.0, int(x.size))



def subset_effects(rows: Sequence[dict], names: Sequence[str], key: str, sep: str = " + ") -> list[dict]:
    """What adding each scorer does, from one row per measured subset of `names`: row["scorers"] the subset's names
    joined by `sep` (any label when row["n_scorers"] is 0: the generator alone), row[key] its quality. Per scorer:
    the mean and sd of quality(S + n) - quality(S) over the subsets S without n where both were measured, and how
    often adding it helped (a gain > 0)."""
    quality = {}
    for r in rows:
        subset = frozenset(r["scorers"].split(sep)) if r["n_scorers"] else frozenset()
        unknown = subset - set(names)
        if unknown or len(subset) != r["n_scorers"]:
            raise ValueError(f"row {r['scorers']!r} does not name {r['n_scorers']} of the scorers {list(names)}")
        if subset in quality:
            raise ValueError(f"the subset {sorted(subset)} appears twice: give one row per subset (a summary)")
        quality[subset] = r[key]
    out = []
    for n in names:
        gains = [quality[s | {n}] - v for s, v in quality.items() if n not in s and s | {n} in quality]
        if not gains:
            raise ValueError(f"no measured pair of subsets without and with {n!r}")
        stats = mean_sd(gains)
        out.append({"scorer": n, "mean_gain": stats.mean, "gain_sd": stats.sd, "pairs": stats.n,
                    "helped": int(sum(g > 0 for g in gains))})
    return out


def disagreement(energies: dict[str, Sequence[float]]) -> float:
    """How differently scorers order the same candidates: 1 - the mean Spearman correlation over pairs of scorers
    of their energies (0: the same order; 2: reversed). A constant column has no order: it counts as 0."""
    names = list(energies)
    if len(names) < 2:
        raise ValueError(f"disagreement needs at least 2 scorers, got {names}")
    columns = {n: np.asarray(v, dtype=float) for n, v in energies.items()}

    def rho(a, b):  # checked first: scipy warns on a constant column
        return 0.0 if np.ptp(a) == 0 or np.ptp(b) == 0 else float(scipy.stats.spearmanr(a, b).statistic)

    return 1 - float(np.mean([rho(columns[a], columns[b]) for i, a in enumerate(names) for b in names[i + 1:]]))


def by_disagreement(rows: Sequence[dict], names: Sequence[str], bins: int = 3) -> tuple[list[dict], dict]:
    """Does consensus help most where its scorers disagree? rows: one per item, with "disagreement",
    "consensus_right" (all scorers together) and f"{n}_right" for each scorer n alone. Returns, per equal-count
    bin of disagreement (least first), the rate of consensus, of any single scorer (an oracle) and of the mean
    single scorer, with Wilson intervals; and the rank correlation over items of the disagreement with the gain
    of consensus over the mean single scorer (with its bootstrap interval; NaN for fewer than 3 items)."""
    if not rows:
        raise ValueError("no items to bin by disagreement")
    order = np.argsort([r["disagreement"] for r in rows], kind="stable")
    single = {i: np.mean([r[f"{n}_right"] for n in names]) for i, r in enumerate(rows)}
    out = []
    for b, members in enumerate(np.array_split(order, min(bins, len(rows)))):
        group = [rows[i] for i in members]
        line = {"bin": b + 1, "items": len(group), "disagreement_max": max(r["disagreement"] for r in group)}
        for label, right in (("consensus", lambda r: r["consensus_right"]),
                             ("any_single", lambda r: max(r[f"{n}_right"] for n in names))):
            wins = int(sum(bool(right(r)) for r in group))
            low, high = wilson_interval(wins, len(group))
            line.update({label: wins / len(group), f"{label}_low": low, f"{label}_high": high})
        line["mean_single"] = float(np.mean([single[i] for i in members]))
        out.append(line)
    gain = [float(r["consensus_right"]) - single[i] for i, r in enumerate(rows)]
    rho, low, high = (rank_correlation([r["disagreement"] for r in rows], gain) if len(rows) >= 3
                      else (float("nan"),) * 3)
    return out, {"rho": rho, "low": low, "high": high, "items": len(rows)}
