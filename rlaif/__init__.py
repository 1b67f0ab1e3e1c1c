"""RLAIF: candidates from a policy, preferences from the judge, training with TRL on them.

>>> from judge import load_job_config
>>> from rlaif import generate_candidates, load_train_config, train
>>> generate_candidates(load_job_config("configs/rlaif_round.yaml"))   # doctest: +SKIP
>>> result = train(load_train_config("configs/dpo.yaml"))      # doctest: +SKIP
>>> print(result.table())                                       # doctest: +SKIP
>>> from rlaif import load_loop_config, run_loop
>>> run_loop(load_loop_config("configs/rlaif_loop.yaml"))              # doctest: +SKIP

Importing ``rlaif`` does not import torch, transformers or TRL; training does.
"""

from rlaif._gen_records import GeneratedText, GenerateSummary, GenerationRequest, PolicyInfo
from rlaif._generate import (
    GenerationTask,
    candidate_id,
    candidate_seed,
    generate_candidates,
    pair_items,
    pairs_path,
    read_candidates,
)
from rlaif._datasets import COLUMNS, TrainingData, load_training_rows
from rlaif._alarms import (
    MONITORS,
    Alarm,
    AlarmConfig,
    Bound,
    MonitorOverride,
    MonitorThresholds,
    alarms_block,
    check_alarms,
    read_monitor_overrides,
    record_monitor_override,
)
from rlaif._monitor_metrics import REFUSAL_PHRASES, sequence_kl
from rlaif._monitors import MonitorSettings, RoundMonitors, append_round_monitors, measure_round, read_round_monitors
from rlaif._loop import STEPS, LoopResult, LoopStopped, run_loop
from rlaif._loop_config import HumanData, LoopAudit, LoopConfig, LoopEval, LoopGenerate, load_loop_config
from rlaif._loop_data import MixReport, mix_training_rows
from rlaif._loop_eval import WinRate, win_rate
from rlaif._prefs_build import NoPairsError, WalkBack, build_preferences, walk_back
from rlaif._prefs_records import EXCLUSIONS, PreferencePair, PrefsBuild, PrefsConfig, load_prefs_config
from rlaif._reward_model import RewardModel
from rlaif._train import PROVENANCE, TrainPlan, TrainResult, plan_training, train
from rlaif._train_config import ALGORITHMS, LoraSettings, RaySettings, TrainConfig, load_train_config
from rlaif._trainer import RankReport, TrainSpec, run_training

__all__ = [
    "MONITORS",
    "REFUSAL_PHRASES",
    "Alarm",
    "AlarmConfig",
    "Bound",
    "MonitorOverride",
    "MonitorSettings",
    "MonitorThresholds",
    "RoundMonitors",
    "alarms_block",
    "append_round_monitors",
    "check_alarms",
    "measure_round",
    "read_monitor_overrides",
    "read_round_monitors",
    "record_monitor_override",
    "sequence_kl",
    "STEPS",
    "HumanData",
    "LoopAudit",
    "LoopConfig",
    "LoopEval",
    "LoopGenerate",
    "LoopResult",
    "LoopStopped",
    "MixReport",
    "WinRate",
    "load_loop_config",
    "mix_training_rows",
    "run_loop",
    "win_rate",
    "GenerateSummary",
    "GeneratedText",
    "GenerationRequest",
    "GenerationTask",
    "PolicyInfo",
    "candidate_id",
    "candidate_seed",
    "generate_candidates",
    "pair_items",
    "pairs_path",
    "read_candidates",
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
