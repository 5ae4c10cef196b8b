"""easy-VQA as Table 2's analog: questions become statements, answers map onto the 13-answer vocabulary exactly,
and bad inputs are refused by name."""
import pytest
import torch

from pic.tasks.vqa import data as vqa


def test_easy_vqa_loads_from_the_package_with_its_13_answers_and_three_kinds():
    test = vqa.load_questions("test")
    assert len(test) == 9673 and len(vqa.answer_vocabulary()) == 13
    kinds = {k: sum(q.kind == k for q in test) for k in vqa.KINDS}
    assert kinds == {"shape": 1257, "color": 1280, "yes/no": 7136}
    images = vqa.load_images("test", [0, 5])
    assert images.shape == (2, 3, 64, 64) and images.dtype == torch.uint8
    assert vqa.as_frames(images).shape == (2, 1, 3, 64, 64)


def test_scene_labels_agree_with_every_question_about_the_image():
    test = vqa.load_questions("test")
    color, shape = vqa.scene_labels(test, 1000)
    assert (color >= 0).float().mean() > 0.85 and (shape >= 0).float().mean() > 0.85
    for q in test[:500]:  # a label, where known, answers the wh-questions as the dataset does
        if q.kind == "color" and color[q.video] >= 0:
            assert vqa.COLORS[color[q.video]] == q.answer
        if q.kind == "shape" and shape[q.video] >= 0 and q.text.startswith("what shape"):
            assert vqa.SHAPES[shape[q.video]] == q.answer


@pytest.mark.parametrize("question, answer, expected", [
    ("what color is the circle?", "Red", "a red circle"),
    ("what is the color of the shape?", " blue.", "a blue shape"),
    ("what shape is in the image?", "triangle", "a triangle"),
    ("what is the green shape?", "circle", "a green circle"),
    ("is there a red shape?", "yes", "there is a red shape"),
    ("is there a red shape?", "No", "there is no red shape"),
    ("is there not a circle in the image?", "yes", "there is no circle"),
    ("does the image not contain a teal shape?", "no", "there is a teal shape"),
    ("is no rectangle present?", "yes", "there is no rectangle"),
    ("is there a triangle?", "The", "the"),  # not an answer yet: scored as it reads
    ("what color is the circle?", "", "a circle"),
    ("is the athlete wearing trousers?", "yes", "is the athlete wearing trousers? yes"),  # other datasets
])
def test_a_question_and_a_partial_answer_make_the_statement_the_scorers_judge(question, answer, expected):
    assert vqa.statement(question, answer) == expected


def test_every_test_question_and_its_gold_answer_make_a_true_caption_like_statement():
    for q in {q.text: q for q in vqa.load_questions("test")}.values():
        s = vqa.statement(q.text, q.answer)
        assert s.startswith(("a ", "there is ")), (q, s)


def test_answers_map_onto_the_vocabulary_by_exact_normalised_match_only():
    vocab = vqa.answer_vocabulary()
    assert vqa.map_answer(" Yes, it is.", vocab) == "yes"
    assert vqa.map_answer("Red\nQ: next", vocab) == "red"
    for unexpressible in ["grey", "square", "red circle", "", "The shape is red"]:
        assert vqa.map_answer(unexpressible, vocab) is None


def test_accuracy_counts_unanswerable_answers_as_wrong_and_reports_each_kind():
    qs = [vqa.Question("what color is the shape?", "red", 0, "color"),
          vqa.Question("is there a circle?", "yes", 0, "yes/no"),
          vqa.Question("is there a circle?", "no", 1, "yes/no")]
    acc = vqa.accuracy_by_kind(["red", None, "no"], qs)
    assert acc == {"overall": 2 / 3, "color": 1.0, "yes/no": 0.5, "unanswerable": 1 / 3}


def test_a_gold_answer_the_vocabulary_cannot_express_is_refused_by_name():
    bad = [vqa.Question("what shape is in the image?", "hexagon", 0, "shape")]
    with pytest.raises(vqa.UnanswerableError, match="'hexagon'"):
        vqa.check_answers(bad, set(vqa.answer_vocabulary()))


@pytest.mark.parametrize("bad", ["", "   ", None])
def test_an_empty_question_is_refused(bad):
    with pytest.raises(ValueError, match="non-empty string"):
        vqa.statement(bad, "yes")
    with pytest.raises(ValueError, match="non-empty string"):
        vqa.question_kind(bad)


def test_stratified_subsets_hold_each_kind_equally_and_differ_by_seed():
    test = vqa.load_questions("test")
    a, b = vqa.stratified_subset(test, 50, seed=0), vqa.stratified_subset(test, 50, seed=1)
    assert len(a) == 150 and a != b and a == vqa.stratified_subset(test, 50, seed=0)
    assert {k: sum(test[i].kind == k for i in a) for k in vqa.KINDS} == {k: 50 for k in vqa.KINDS}
    with pytest.raises(ValueError, match="only 1280 'color' questions"):
        vqa.stratified_subset(test, 2000, seed=0)
