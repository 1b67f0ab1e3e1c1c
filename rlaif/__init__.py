"""RLAIF: training a policy (or a reward model) with TRL on the judge's preferences.

>>> from rlaif import load_train_config, train
>>> result = train(load_train_config("configs/dpo.yaml"))      # doctest: +SKIP
>>> print(result.table())                                       # doctest: +SKIP

Importing ``rlaif`` does not import torch, transformers or TRL; training does.
"""

from rlaif._datasets import COLUMNS, TrainingData, load_training_rows
from rlaif._prefs_build import NoPairsError, WalkBack, build_preferences, walk_back
from rlaif._prefs_records import EXCLUSIONS, PreferencePair, PrefsBuild, PrefsConfig, load_prefs_config
from rlaif._reward_model import RewardModel
from rlaif._train import PROVENANCE, TrainPlan, TrainResult, plan_training, train
from rlaif._train_config import ALGORITHMS, LoraSettings, RaySettings, TrainConfig, load_train_config
from rlaif._trainer import RankReport, TrainSpec, run_training

__all__ = [
    "EXCLUSIONS",
    "NoPairsError",
    "PreferencePair",
    "PrefsBuild",
    "PrefsConfig",
    "WalkBack",
    "build_preferences",
    "load_prefs_config",
    "walk_back",
    "ALGORITHMS",
    "COLUMNS",
    "PROVENANCE",
    "LoraSettings",
    "RankReport",
    "RaySettings",
    "RewardModel",
    "TrainConfig",
    "TrainPlan",
    "TrainResult",
    "TrainSpec",
    "TrainingData",
    "load_train_config",
    "load_training_rows",
    "plan_training",
    "run_training",
    "train",
]
