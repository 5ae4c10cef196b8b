"""The merging experiments' own logic (pic.tasks.merging): domains and leave-one-out selection, Ratatouille's
initialisation schedule, experts as state dicts, the output-space scorers, checkpoints and settings."""
import warnings

import numpy as np
import pytest
import torch

from pic.assets import AssetError
from pic.energy import ComposedEnergy
from pic.stats import rank_correlation
from pic.tasks import merging
from pic.tasks.merging import checkpoints
from pic.tasks.merging import domains as dm
from pic.tasks.merging import multimodal as mm
from pic.tasks.merging import output_space as out


@pytest.fixture(scope="module")
def digits():
    return dm.make_domains(limit=40)


# ------------------------------------------------------------------------------------------------- domains

def test_domains_are_disjoint_images_rotated_by_their_angle(digits):
    assert digits.angles == list(dm.ANGLES)
    raw = {a: digits.images[a] for a in digits.angles}
    # a quarter turn of an 8x8 grid is exact: the 90° domain is its own images turned, never another domain's
    flat = torch.cat([raw[a] for a in digits.angles] + [digits.pool_images])
    assert len({tuple(r.tolist()) for r in flat}) == len(flat)
    assert torch.equal(dm.rotate(digits.pool_images[:5], 90).reshape(-1, 8, 8),
                       torch.rot90(digits.pool_images[:5].reshape(-1, 8, 8), 1, (1, 2)))
    for a in digits.angles:
        assert not set(digits.train[a].tolist()) & set(digits.validation[a].tolist())


def test_leave_one_out_trains_and_selects_on_the_other_domains_only(digits):
    for test in digits.angles:
        split = dm.leave_one_out(digits, test)
        assert test not in split.domains and len(split.domains) == len(digits.angles) - 1
        held_out = {tuple(r.tolist()) for r in digits.images[test]}
        for x in (split.train_x, split.val_x):
            assert not {tuple(r.tolist()) for r in x} & held_out
        assert torch.equal(split.test_x, digits.images[test])
    with pytest.raises(KeyError, match="no domain 45"):
        dm.leave_one_out(digits, 45)


def test_ratatouille_run_i_starts_from_auxiliary_slot_i_mod_a_plus_1(digits):
    assert [dm.init_slot(i, 3) for i in range(9)] == [0, 1, 2, 3, 0, 1, 2, 3, 0]
    no_training = dm.Steps(foundation=0, aux_probe=0, aux_finetune=0, probe=0, warmup=0, run=0)
    foundation = dm.pretrain_foundation(digits, 0, seed=0)
    aux = {t: dm.auxiliary(foundation, digits, t, no_training, seed=i + 1) for i, t in enumerate(dm.AUX_TASKS)}
    # untrained auxiliaries keep the foundation's featurizer: make each slot recognisable
    aux = {t: {k: v + (i + 1) for k, v in a.items()} for i, (t, a) in enumerate(aux.items())}
    runs = dm.train_domain(foundation, aux, dm.leave_one_out(digits, 30), no_training, runs=5, seed=0)
    slots = [foundation] + list(aux.values())
    for i, state in enumerate(runs["ratatouille"]):
        expected = slots[i % 4]
        assert all(torch.equal(dm.features_of(state)[k], expected[k]) for k in expected), f"run {i}"
    heads = [dm.head_of(s) for s in runs["ratatouille"] + runs["soup"]]
    assert all(torch.equal(h["head.weight"], heads[0]["head.weight"]) for h in heads)  # one shared probe head
    fused = dm.fused(list(aux.values()))
    assert all(torch.equal(dm.features_of(s)[k], fused[k]) for s in runs["fusing"] for k in fused)


# ------------------------------------------------------------------------------------------------- output space

def _member(seed):
    return dm.classifier(seed=seed).state_dict()


def test_pic_consensus_is_the_product_of_the_members_distributions():
    members = [_member(s) for s in range(3)]
    x = torch.rand(12, 64)
    energy = out.consensus(members)
    assert isinstance(energy, ComposedEnergy) and len(energy.names) == 3
    chosen = out.consensus_predict(energy, x)
    with torch.no_grad():
        logp = sum(torch.log_softmax(dm.classifier(m)(x), -1) for m in members)
    assert torch.equal(chosen, logp.argmax(1))
    # one forward pass per member per example: the N x cost of output space
    assert [t.scorer.forward_passes for t in energy.terms] == [12, 12, 12]


def test_compare_counts_parameters_and_forward_passes():
    members = [_member(s) for s in range(4)]
    x, y = torch.rand(10, 64), torch.randint(0, 10, (10,))
    rows = {c.method: c for c in out.compare(members, x, y)}
    size = sum(v.numel() for v in members[0].values())
    assert rows["merged (uniform soup)"].parameters == size and rows["merged (uniform soup)"].forward_passes == 1
    assert rows["PIC consensus"].parameters == 4 * size and rows["PIC consensus"].forward_passes == 4
    assert rows["logit ensemble"].forward_passes == 4


def test_connectivity_ends_are_the_two_members():
    a, b = _member(0), _member(1)
    x, y = torch.rand(30, 64), torch.randint(0, 10, (30,))
    curve = out.connectivity(a, b, x, y, [0.0, 0.5, 1.0])
    assert curve[0] == dm.accuracy(a, x, y) and curve[-1] == dm.accuracy(b, x, y)


# ------------------------------------------------------------------------------------------------- multimodal

def _tiny_vqa(n=6):
    g = torch.Generator().manual_seed(0)
    return mm.VQAData(torch.rand(n, mm.PATCHES, 48, generator=g), torch.randint(1, 9, (n, 5), generator=g),
                      torch.arange(n), torch.randint(0, 4, (n,), generator=g), tuple(f"w{i}" for i in range(9)),
                      ("a", "b", "c", "d"))


def test_copied_experts_compute_what_the_seed_model_computes():
    data = _tiny_vqa()
    seed_model = mm.new_model(data, mm.SHARED, seed=0, d=16, heads=2, hidden=32)
    specific = mm.load_state(data, mm.specific_from_seed(seed_model.state_dict()), mm.EXPERTS, d=16, heads=2,
                             hidden=32)
    x = data.batch(torch.arange(len(data)))
    assert torch.allclose(seed_model.eval()(*x), specific(*x), atol=1e-6)
    # and every merge of identical experts gives back the seed's block
    for method in ("interpolation", "modality_arithmetic"):
        merged = mm.merge_experts(method, specific.state_dict(), seed_model.state_dict(), lam=1 / 3)
        assert all(torch.allclose(merged[k], v, atol=1e-6) for k, v in seed_model.state_dict().items())


def test_expert_weights_round_trip_and_name_the_missing_expert():
    data = _tiny_vqa()
    state = mm.new_model(data, mm.EXPERTS, seed=0, d=16, heads=2, hidden=32).state_dict()
    blocks = {e: mm.expert_weights(state, e) for e in mm.EXPERTS}
    assert all(k.startswith("blocks.") and ".v." not in k for k in blocks["v"])
    assert mm.with_experts(state, blocks).keys() == state.keys()
    with pytest.raises(KeyError, match="expert 'shared'"):
        mm.expert_weights(state, "shared")


def test_regmean_grams_are_named_by_expert_free_layer():
    data = _tiny_vqa()
    model = mm.new_model(data, mm.EXPERTS, seed=0, d=16, heads=2, hidden=32)
    grams = mm.expert_grams(model, data, torch.arange(len(data)))
    assert set(grams) == set(mm.EXPERTS)
    assert set(grams["v"]) == {f"blocks.{i}.{n}" for i in range(2) for n in ("qkv", "proj", "fc1", "fc2")}


# ------------------------------------------------------------------------------------------------- plumbing

def test_missing_model_seeds_are_refused_naming_those_that_exist(monkeypatch, tmp_path):
    monkeypatch.setattr(checkpoints, "DATA_DIR", tmp_path)
    (tmp_path / "merging").mkdir()
    for kind in checkpoints.KINDS:
        (tmp_path / "merging" / f"{kind}_seed0.safetensors.pin.json").write_text("{}")
    checkpoints.check_seeds([0])
    with pytest.raises(AssetError, match=r"model seed\(s\) \[7\]; seeds with one: \[0\]"):
        checkpoints.check_seeds([0, 7])


def test_packed_groups_come_back_as_float16_rounded_float32():
    groups = {"d30/soup/1": {"features.0.weight": torch.tensor([1.0 + 1e-4, 2.0])}, "foundation": {"x": torch.ones(2)}}
    back = checkpoints.unpack(checkpoints.pack(groups))
    assert set(back) == set(groups) and back["d30/soup/1"]["features.0.weight"].dtype == torch.float32
    assert torch.equal(back["d30/soup/1"]["features.0.weight"], checkpoints.stored(groups["d30/soup/1"])["features.0.weight"])


def test_smoke_experiment_reads_the_committed_local_models():
    smoke, local = merging.load("smoke"), merging.load("local")
    assert set(smoke.seed_lengths) <= set(local.seed_lengths) and smoke.model_seeds == (0,)
    assert merging.load("local", seed=7).model_seeds == (0, 1, 2)  # the experiment seed never picks the models
    assert merging.load("local", seed=3, training=True).model_seeds == (3, 4, 5)


def test_a_rank_correlation_with_a_constant_column_is_undefined_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert all(np.isnan(v) for v in rank_correlation([1.0, 2.0, 3.0, 4.0], [0.0] * 4, resamples=50))


def test_rank_correlation_of_a_monotone_relation():
    x = np.arange(10.0)
    rho, lo, hi = rank_correlation(x, -x ** 3, resamples=200)
    assert rho == pytest.approx(-1.0) and hi == pytest.approx(-1.0)
    rho, lo, hi = rank_correlation(x, np.random.default_rng(0).permutation(10), resamples=200)
    assert lo < 0 < hi
