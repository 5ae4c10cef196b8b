"""The robot task's scorers: the relation CLIP, the spatial feature distance and the hub CLIP keep the energy
contract; the committed relation scorers prefer scenes where the goal holds."""
import pytest
import torch

from pic.assets import read_pin
from pic.tasks.robot.feature_distance import EfficientNetLite0Maps, FeatureMapDistance
from pic.models.hub import HubUnavailableError
from pic.models.hub_clip import PAPER_CLIP, HubClip, load_hub_clip
from pic.tasks.robot.relation_clip import ConvTower, RelationClip, sigmoid_clip_loss
from pic.models.text_encoder import FrozenTextEncoder
from pic.tasks.robot.goals import RelationGoal
from pic.tasks.robot import checkpoints
from pic.tasks.robot.scorers import HubClipScorer, image_scorers, text_scorers
from pic.tasks.robot.sim import TABLE_TOP, VIEWS, Placement, TabletopWorld
from pic.tasks.robot.training import CAPTIONS


@pytest.fixture(scope="module")
def text_encoder():
    return FrozenTextEncoder()


@pytest.fixture(scope="module")
def world():
    with TabletopWorld(size=64) as w:
        yield w


def test_whitening_spreads_captions_that_minilm_puts_together(text_encoder):
    model = RelationClip(text_encoder, width=8, feature_dim=16)
    left, right = "the red cube is to the left of the blue cube", "the red cube is to the right of the blue cube"
    with torch.no_grad():
        before = float(model.text.encode([left]) @ model.text.encode([right]).T)
        model.text.whiten(CAPTIONS)
        after = float(model.text.encode([left]) @ model.text.encode([right]).T)
    assert before > 0.95 and after < 0.6


def test_relation_clip_gives_logits_per_caption_and_a_small_checkpoint(text_encoder):
    model = RelationClip(text_encoder, width=8, feature_dim=16)
    logits = model.logits(torch.rand(3, 3, 64, 64), CAPTIONS[:5])
    assert logits.shape == (3, 5)
    assert not any(k.startswith("text.frozen") for k in model.trainable_state())
    truth = torch.zeros(3, 5, dtype=torch.bool)
    loss = sigmoid_clip_loss(logits, truth, torch.ones_like(truth), pos_weight=torch.full((5,), 3.0))
    assert loss.ndim == 0 and torch.isfinite(loss)
    with pytest.raises(ValueError, match=r"ConvTower expects images \[B, 3, 64, 64\]"):
        ConvTower()(torch.rand(2, 3, 32, 32))


def _scene(world, goal: RelationGoal, holds: bool):
    """Two cubes in a clear-cut arrangement where `goal` holds (or its mirror, where it does not)."""
    offsets = {"left": (0.0, -0.12), "right": (0.0, 0.12), "front": (0.12, 0.0), "behind": (-0.12, 0.0)}
    base = (-0.08, 0.0)
    if goal.relation == "on":
        world.release_states()  # the states of earlier scenes; this scene's is needed by predict
        snap = world.reset_scene({goal.obj: (*base, 0.3), goal.subject: (base[0], base[1] + 0.12, 0.5)})
        upper, lower = (goal.subject, goal.obj) if holds else (goal.obj, goal.subject)
        return world.predict(snap, Placement(upper, onto=lower))
    dx, dy = offsets[goal.relation]
    sign = 1 if holds else -1
    snap = world.reset_scene({goal.obj: (*base, 0.3), goal.subject: (base[0] + sign * dx, base[1] + sign * dy, 0.5)},
                             save=False)
    assert goal.holds(snap.positions) == holds and abs(snap.positions[goal.subject][2] - TABLE_TOP - 0.025) < 0.01
    return snap


@pytest.mark.skipif(read_pin(checkpoints.name("front")) is None, reason="no committed relation checkpoints")
@pytest.mark.parametrize("relation", ["left", "right", "front", "behind", "on"])
def test_the_summed_committed_relation_scorers_prefer_the_scene_where_the_goal_holds(relation, world, text_encoder):
    scorers = text_scorers("local")
    wins = 0
    for subject, obj in [("red", "blue"), ("green", "yellow"), ("blue", "green")]:
        goal = RelationGoal(subject, relation, obj)
        images = torch.stack([world.render_snapshot(_scene(world, goal, h)) for h in (True, False)])  # [2, V, ...]
        total = sum(scorers[v].energy(images[:, i], prompt=goal.caption) for i, v in enumerate(VIEWS))
        wins += bool(total[0] < total[1])
    assert wins >= 2, f"{relation}: the goal-holding scene scored better in {wins} of 3 cases"


def test_committed_relation_checkpoints_are_small_and_record_their_accuracy(text_encoder):
    for view in VIEWS:
        pin = read_pin(checkpoints.name(view))
        if pin is None:
            pytest.skip("no committed relation checkpoints")
        assert pin["bytes"] < 4_000_000 and pin["produced_by"] == "40_train_relation_scorer.ipynb"
        assert isinstance(checkpoints.load(view, text_encoder), RelationClip)


def test_feature_distance_is_zero_at_the_goal_and_grows_as_a_cube_moves_away(world):
    world.reset_scene({"red": (-0.1, -0.1, 0.0), "blue": (0.0, 0.1, 0.0)}, save=False)
    goal = world.render(("top",))[0]
    scorer = FeatureMapDistance(EfficientNetLite0Maps(6), goal, "top")
    images = []
    for shift in (0.0, 0.04, 0.12):
        world.reset_scene({"red": (-0.1 + shift, -0.1 + shift, 0.0), "blue": (0.0, 0.1, 0.0)}, save=False)
        images.append(world.render(("top",))[0])
    e = scorer.energy(torch.stack(images))
    assert e.shape == (3,) and float(e[0]) == pytest.approx(0.0, abs=1e-5) and e[0] < e[1] < e[2]


@pytest.fixture(scope="module")
def tiny_clip():
    from transformers import AutoTokenizer, CLIPConfig, CLIPModel

    from pic.models.text_encoder import minilm_path

    tokenizer = AutoTokenizer.from_pretrained(minilm_path())  # any tokenizer works with a random text tower
    config = CLIPConfig(
        text_config=dict(vocab_size=tokenizer.vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=64, eos_token_id=tokenizer.sep_token_id,
                         bos_token_id=tokenizer.cls_token_id, pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=8)
    torch.manual_seed(0)
    return CLIPModel(config).eval(), tokenizer


def test_the_paper_profile_scorer_is_a_hub_clip_model_scoring_each_camera(tiny_clip):
    model, tokenizer = tiny_clip
    scorer = HubClipScorer(HubClip(model, tokenizer), "front")
    images = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    text = scorer.energy(images, prompt="the red cube is on top of the blue cube")
    image = scorer.energy(images, goal_image=images[0])
    assert text.shape == image.shape == (4,) and not text.requires_grad
    assert float(image[0]) == pytest.approx(0.0, abs=1e-5) and bool((image[1:] > image[0]).all())
    with pytest.raises(ValueError, match="exactly one of `prompt`"):
        scorer.energy(images)


def test_the_paper_profile_stops_at_once_offline_naming_the_clip_id(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnavailableError, match=PAPER_CLIP):
        load_hub_clip()


def test_the_paper_profile_wires_a_hub_clip_by_id_into_every_camera(tiny_clip, tmp_path, monkeypatch):
    model, tokenizer = tiny_clip
    model.save_pretrained(tmp_path), tokenizer.save_pretrained(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    scorers = text_scorers("paper", hub_id=str(tmp_path))
    assert list(scorers) == list(VIEWS) and all(isinstance(s, HubClipScorer) for s in scorers.values())
    goal = torch.rand(3, 64, 64)
    image = image_scorers("paper", hub_id=str(tmp_path))("side", goal)
    assert image.name == "side" and image.energy(torch.stack([goal, goal * 0.5])).shape == (2,)
