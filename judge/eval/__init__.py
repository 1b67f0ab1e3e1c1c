"""Judges measured against human labels, and against injection attacks."""

from judge.eval._eval import (
    PairLabel,
    PointLabel,
    calibrate,
    eval_table,
    fit_jury_weights,
    fit_tie_threshold,
    pairwise_metrics,
    pointwise_metrics,
    read_labelled,
    run_eval,
    save_config,
)
from judge.eval._robustness import (
    Attack,
    apply_attack,
    attack_text,
    injection_report,
    load_attacks,
)

__all__ = [
    "Attack",
    "PairLabel",
    "PointLabel",
    "apply_attack",
    "attack_text",
    "calibrate",
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
