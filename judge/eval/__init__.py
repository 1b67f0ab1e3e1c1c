"""Judges measured against human labels, and against injection attacks."""

from judge.eval._calibration import calibrate, fit_jury_weights, fit_tie_threshold, save_config
from judge.eval._labels import PairLabel, PointLabel, read_labelled
from judge.eval._metrics import pairwise_metrics, pointwise_metrics
from judge.eval._report import BootstrapSettings, EvalReport, EvalTiming, JuryAgreement, RejectedRow
from judge.eval._robustness import (
    Attack,
    apply_attack,
    attack_text,
    injection_report,
    load_attacks,
)
from judge.eval._run import default_output_dir, run_eval
from judge.eval._table import eval_table

__all__ = [
    "Attack",
    "BootstrapSettings",
    "EvalReport",
    "EvalTiming",
    "JuryAgreement",
    "PairLabel",
    "PointLabel",
    "RejectedRow",
    "apply_attack",
    "attack_text",
    "calibrate",
    "default_output_dir",
    "eval_table",
    "fit_jury_weights",
    "fit_tie_threshold",
    "injection_report",
    "load_attacks",
    "pairwise_metrics",
    "pointwise_metrics",
    "read_labelled",
    "run_eval",
    "save_config",
]
