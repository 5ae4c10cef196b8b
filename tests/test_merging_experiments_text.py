"""Experiment 2's plumbing: the re-implemented top layer of MiniLM is MiniLM's, the text tasks split by problem,
and RegMean's Grams name the trained weights."""
import pytest
import torch

from pic import merging
from pic.tasks.merging import text_tasks as tt


@pytest.fixture(scope="module")
def minilm():
    return tt.load_minilm()


@pytest.fixture(scope="module")
def tasks():
    return tt.load_tasks()


def test_top_layer_reproduces_minilm(minilm):
    tokenizer, model = minilm
    texts = ["what color is the circle?", "Henrik saw a 3 metre shark with two marks of 15 cm each."]
    layer = tt.TopLayer(tt.base_weights(model), {"x": 2})
    encoded = tt.encode(tokenizer, model, texts)
    with torch.no_grad():
        batch = tokenizer(texts, padding=True, truncation=True, max_length=tt.MAX_TOKENS, return_tensors="pt")
        hidden = model(**batch).last_hidden_state
        m = batch["attention_mask"].unsqueeze(-1).float()
        expected = (hidden * m).sum(1) / m.sum(1)
    assert torch.allclose(layer(encoded.hidden, encoded.mask), expected, atol=1e-5)


def test_text_tasks_split_by_problem_so_test_problems_are_unseen(tasks):
    assert list(tasks) == list(tt.TASKS)
    language = tasks["language"]
    assert language.texts is tasks["money"].texts  # two labellings of the same texts share one encoding
    split_of = {}
    for split in tt.SPLITS:
        for row in language.rows(split).tolist():
            split_of.setdefault(row % 100, set()).add(split)  # rows run problem-major within each language
    assert all(len(s) == 1 for s in split_of.values())
    assert set(language.labels.tolist()) == set(range(len(tt.LANGUAGES)))
    kind = tasks["vqa_kind"]
    assert not set(kind.rows("train").tolist()) & set(kind.rows("test").tolist())
    assert set(kind.labels.tolist()) == {0, 1, 2}


def test_regmean_merges_the_trained_weights_from_layer_grams(minilm, tasks):
    tokenizer, model = minilm
    base = tt.base_weights(model)
    layer = tt.TopLayer(base, {"vqa_kind": 3})
    encoded = tt.encode(tokenizer, model, tasks["vqa_kind"].texts[:20])
    grams = tt.layer_grams(layer, encoded, torch.arange(20))
    assert {f"{g}.weight" for g in grams} <= set(tt.TRAINED)
    same = {k: base[k] for k in tt.TRAINED}
    merged = merging.regmean({"a": same, "b": same}, {"a": grams, "b": grams}, 0.9)
    assert all(torch.allclose(merged[k], same[k], atol=1e-5) for k in tt.TRAINED)



def first_test_rows(tasks, n=24):
    """The tasks cut to the first n test rows of each (also its validation rows), texts still shared where they were."""
    texts_of, out = {}, {}
    for name, t in tasks.items():
        rows = t.rows("test")[:n]
        texts = texts_of.setdefault(id(t.texts), [t.texts[i] for i in rows.tolist()])
        out[name] = tt.TaskData(texts, t.labels[rows], t.classes,
                                {"validation": torch.arange(n), "test": torch.arange(n)})
    return out


def test_a_merge_of_one_fine_tuning_scores_as_that_fine_tuning_and_a_left_out_task_is_not_merged(minilm, tasks):
    from pic.tasks.merging import experiments

    tokenizer, model = minilm
    small = first_test_rows(tasks)
    members = experiments.text_members(tt.base_weights(model), small, tt.encode_tasks(tokenizer, model, small), 0)
    for task in ("vqa_kind", "language"):  # one of two tasks that share their texts, and so one forward
        assert members.accuracy(members.merge("linear", tasks=[task]))[task] == members.individual[task]
    language = members.merge("task_arithmetic", 1.0, tasks=["language"])  # θ_0 + τ_language only
    assert all(torch.allclose(language[k], members.layers["language"][k], atol=1e-6) for k in tt.TRAINED)
    both = members.merge("task_arithmetic", 1.0, tasks=["language", "money"])
    assert not torch.allclose(both[tt.TRAINED[0]], language[tt.TRAINED[0]])
