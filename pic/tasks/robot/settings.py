"""The sizes of each profile, so that the notebooks never branch on it.

`load(profile, training=True, ...)` -> TrainingSettings for 40 (scenes, epochs, model size, whether checkpoints
are written: local and paper only, so a smoke run never replaces the committed weights);
`load(profile, ...)` -> ExperimentSettings for 41 (episodes per row, planner sizes, whether the pair rows run).
Keyword arguments that are not None override the profile's value (the notebooks' `None` parameters).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from pic.report import profile_settings
from pic.tasks.robot.planner import PlannerSettings


@dataclass(frozen=True)
class TrainingSettings:
    profile: str
    n_train: int  # training scenes
    n_test: int  # held-out scenes
    epochs: int  # per camera
    width: int  # the conv tower's width
    feature_dim: int
    save: bool  # a retrain writes the committed checkpoints

    def record(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("profile", "save")}


@dataclass(frozen=True)
class ExperimentSettings:
    profile: str
    n_episodes: int  # episodes per row, the same for every row
    max_steps: int  # executed actions per episode at most
    n_random: int  # random table placements proposed per step
    rounds: int  # planner rounds per step (1: random shooting only)
    pairs: bool  # the rows of each pair of cameras

    @property
    def planner(self) -> PlannerSettings:
        return PlannerSettings(n_random=self.n_random, rounds=self.rounds, max_steps=self.max_steps)

    def episode_seeds(self, seed: int) -> list[int]:
        """The evaluation episodes of experiment seed `seed` (validation_seeds are others)."""
        return [seed * 100_000 + i for i in range(self.n_episodes)]

    def validation_seeds(self, seed: int, n: int) -> list[int]:
        """n development episodes of experiment seed `seed`, for choosing weights (never an evaluation episode)."""
        return [seed * 100_000 + 10_000 + i for i in range(n)]

    def record(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "profile"}


TRAINING = {
    "smoke": dict(n_train=96, n_test=48, epochs=1, width=8, feature_dim=32),
    "local": dict(n_train=6000, n_test=1000, epochs=20, width=24, feature_dim=192),
    "paper": dict(n_train=6000, n_test=1000, epochs=20, width=24, feature_dim=192),
}
EXPERIMENT = {
    "smoke": dict(n_episodes=2, max_steps=1, n_random=6, rounds=1, pairs=False),
    "local": dict(n_episodes=50, max_steps=2, n_random=24, rounds=2, pairs=True),
    "paper": dict(n_episodes=100, max_steps=2, n_random=24, rounds=2, pairs=True),
}


def load(profile: str, training: bool = False, **given) -> TrainingSettings | ExperimentSettings:
    """The profile's settings for 40 (training=True) or 41, with the given non-None values in place."""
    if training:
        return TrainingSettings(profile, **profile_settings(profile, TRAINING, **given), save=profile != "smoke")
    return ExperimentSettings(profile, **profile_settings(profile, EXPERIMENT, **given))
