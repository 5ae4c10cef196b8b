"""The sizes of each profile, so that Table 2's notebooks never branch on it.

`training(profile, seed, ...)` -> TrainingSettings for 20 (what it trains, or loads with retrain = False);
`load(profile, seed, model_seeds, ...)` -> Settings for 21 (how much it evaluates, which committed models it loads).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from pic.report import check_profile


@dataclass(frozen=True)
class TrainingSettings:
    profile: str
    model_seeds: tuple[int, ...]  # trained (retrain) or loaded: seed, seed + 1, ...
    retrain: bool
    save: bool  # retrain writes and pins the checkpoints (local and paper only)
    n_images: int | None = None  # train images used (test: a quarter as many); None: all
    epochs: dict[str, int] = field(default_factory=lambda: {"lit": 20, "cnn": 8, "coarse": 8})
    epochs_reference: int = 5
    n_distractors: int = 1000
    n_holdout: int = 500

    @property
    def n_seeds(self) -> int:
        return len(self.model_seeds)


TRAINING = {
    "smoke": dict(n_seeds=1, n_images=240, epochs={"lit": 2, "cnn": 1, "coarse": 1}, epochs_reference=1,
                  n_distractors=50, save=False),
    "local": dict(n_seeds=3, save=True),
    "paper": dict(n_seeds=3, save=True),
}


def training(profile: str, seed: int = 0, n_seeds: int | None = None, retrain: bool = False,
             n_holdout: int = 500) -> TrainingSettings:
    """20's settings: model seeds seed, seed + 1, ... (n_seeds, None: the profile's). Loading (retrain False)
    evaluates the committed models against the captions they were trained with (1,000 distractors), at smoke on
    the profile's small image subset."""
    base = dict(TRAINING[check_profile(profile)])
    count = base.pop("n_seeds") if n_seeds is None else int(n_seeds)
    if not retrain:
        base.pop("n_distractors", None)
    return TrainingSettings(profile, tuple(seed + i for i in range(count)), bool(retrain), n_holdout=n_holdout,
                            **base)


@dataclass(frozen=True)
class Settings:
    profile: str
    seed: int  # the experiment's seed: run i draws its test subset with seed + i
    model_seeds: tuple[int, ...]  # run i loads the scorers and reference trained with model_seeds[i]
    n_seeds: int  # runs (one per model seed)
    per_kind: int | None  # test questions of each kind per run; None: the whole test split
    top_k: int  # candidate tokens scored per answer position
    n_rerank: int  # candidate answers of the answer-level rerank
    val_per_kind: int | None  # held-out train questions per kind that choose the step size
    step_sizes: tuple[float, ...]  # the step sizes tried (the paper profile: ZeroCap's 0.3, nothing tuned)
    kv_per_kind: int  # questions per kind of the logit-offset vs key/value comparison (0: skipped)
    data_root: str = ""  # paper: the ActivityNet-QA folder
    hub_models: bool = False  # paper: GPT-2-medium and the hub CLIPs on ActivityNet-QA instead of the trained ones
    max_new_tokens: int = 3  # one-word answers: a word and, for a split word (' te' 'al'), its second piece


EXPERIMENT = {
    "smoke": dict(model_seeds=(0,), per_kind=8, top_k=8, n_rerank=4, val_per_kind=4, step_sizes=(0.3, 1.0),
                  kv_per_kind=1),
    "local": dict(model_seeds=(0, 1, 2), per_kind=500, top_k=32, n_rerank=8, val_per_kind=100,
                  step_sizes=(0.5, 1.0, 1.5), kv_per_kind=3),
    "paper": dict(model_seeds=(0,), per_kind=None, top_k=512, n_rerank=8, val_per_kind=None, step_sizes=(0.3,),
                  kv_per_kind=0, hub_models=True),
}


def load(profile: str, seed: int = 0, model_seeds: list[int] | None = None, per_kind: int | None = None,
         top_k: int | None = None, data_root: str = "") -> Settings:
    """21's settings: the profile's sizes, `seed` the experiment's own, model_seeds (None: the profile's, the
    committed 0, 1, 2 at local) the trained models it loads, one run per model seed."""
    base = dict(EXPERIMENT[check_profile(profile)])
    if model_seeds is not None:
        base["model_seeds"] = tuple(int(s) for s in model_seeds)
    settings = Settings(profile, seed, n_seeds=len(base["model_seeds"]), data_root=data_root, **base)
    given = {k: v for k, v in dict(per_kind=per_kind, top_k=top_k).items() if v is not None}
    return replace(settings, **given)


def record(settings) -> dict:
    """The settings as plain values, for the report."""
    return asdict(settings)
