"""The sizes of each profile, so that the notebooks never branch on it: `load(profile, ...)` -> Settings.

Training (50) and experiment (51) read the same Settings: the training sizes say what 50 trains (and what the
committed checkpoints hold), the evaluation sizes how much 51 evaluates. smoke trains tiny models without saving
them, and evaluates the committed checkpoints on small subsets; local is the committed run.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from pic.report import check_profile
from pic.tasks.merging.domains import Steps


@dataclass(frozen=True)
class Settings:
    profile: str
    model_seeds: tuple[int, ...]  # the models' seeds: trained by 50, loaded by 51
    seed: int  # the experiment's own seed (bootstrap, DARE's drops), independent of the models'
    save: bool  # 50 writes the checkpoints (local and paper only)
    # 1 multimodal
    seed_lengths: tuple[int, ...] = (0, 100, 300, 1000)
    specific_steps: int = 600
    n_images: int | None = None  # easy-VQA train images used (None: all 4,000)
    d: int = 48
    downstream_steps: int = 100  # the fine-tune after merging
    test_questions: int | None = None  # easy-VQA test questions evaluated, a fixed random subset (None: all 9,673)
    validation_questions: int | None = None  # validation questions choosing modality arithmetic's λ (None: all)
    gram_questions: int = 4000  # pre-training questions whose inputs give RegMean's Gram matrices
    lambdas: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)  # modality arithmetic's λ, chosen on validation
    # 2 text
    text_steps: int = 150
    text_tasks: int = 4
    text_lambdas: tuple[float, ...] = (0.3, 0.5, 0.7, 1.0)  # λ candidates of the task-vector merges (validation)
    time_full_model: bool = True  # 51 also times merges of four whole MiniLM state dicts (seconds each)
    # 3 domains
    domain_steps: Steps = Steps()
    runs: int = 4
    domain_limit: int | None = None  # images per domain (None: all 350)
    # 4 output space
    alphas: tuple[float, ...] = tuple(i / 10 for i in range(11))
    bootstrap: int = 2000


PROFILES = {
    "smoke": dict(model_seeds=(0,), save=False, seed_lengths=(0, 20), specific_steps=20, n_images=200,
                  downstream_steps=5, test_questions=300, lambdas=(0.5, 1.0), text_steps=4,
                  domain_steps=Steps(foundation=20, aux_probe=5, aux_finetune=5, probe=5, warmup=2, run=10),
                  runs=2, domain_limit=60, alphas=(0.0, 0.5, 1.0), bootstrap=200),
    "local": dict(model_seeds=(0, 1, 2), save=True),
    "paper": dict(model_seeds=(0, 1, 2), save=True),
}


def load(profile: str, seed: int = 0, model_seeds: list[int] | None = None, training: bool = False) -> Settings:
    """The profile's Settings. Training (50): `seed` is the first model seed, the profile says how many follow.
    Experiment (51): `seed` is the experiment's own seed and model_seeds (default: the profile's) picks the
    committed models; at smoke it evaluates the committed local-size models on small subsets."""
    base = dict(PROFILES[check_profile(profile)])
    if profile == "smoke" and not training:
        local = Settings("local", (0,), seed, False)
        base = dict(model_seeds=(0,), save=False, downstream_steps=5, test_questions=300, lambdas=(0.5, 1.0),
                    time_full_model=False, validation_questions=300, gram_questions=500, text_lambdas=(1.0,),
                    alphas=(0.0, 0.5, 1.0), bootstrap=200, seed_lengths=(0, 300, 1000),
                    specific_steps=local.specific_steps, runs=local.runs)
    if training:
        base["model_seeds"] = tuple(seed + i for i in range(len(base["model_seeds"])))
    settings = Settings(profile, seed=seed, **base)
    if model_seeds is not None:
        settings = replace(settings, model_seeds=tuple(int(s) for s in model_seeds))
    return settings


def record(settings: Settings) -> dict:
    """The settings as plain values, for the report."""
    return asdict(settings)
