"""judgeloop's judge: rubrics, prompts, backends, scoring and the batch engine.

Importing ``judge`` is fast: vLLM, transformers and Ray are imported only by the code that uses them.
"""

from judge._errors import (
    BackendError,
    ClusterError,
    ConfigError,
    DataError,
    JudgeloopError,
    MissingDependencyError,
    RubricError,
)
from judge.bias import length_bias, position_bias, self_preference
from judge.config import (
    JobConfig,
    JudgeConfig,
    JuryConfig,
    JuryMember,
    SamplingConfig,
    ScoringConfig,
    load_job_config,
)
from judge.engine import JobSummary, run_job
from judge.eval import eval_table, fit_jury_weights, fit_tie_threshold, read_labelled, run_eval
from judge.jury import JurySummary, JuryVerdict, aggregate, jury_alpha, run_jury
from judge.metrics import (
    accuracy,
    bootstrap_ci,
    cohen_kappa,
    confusion_matrix,
    kendall_tau,
    krippendorff_alpha,
    pearson,
    spearman,
)
from judge.robustness import Attack, apply_attack, injection_report, load_attacks
from judge.scoring import ScorePlan, read_logprobs, score_plan
from judge.verdicts import PairVerdict, combine_orders, pair_verdicts, read_pair_verdicts
from judge.records import Item, JudgeInfo, JudgeRequest, Judgment, Message, RubricRef, SamplingParams
from judge.rubric import Criterion, FewShotExample, Rubric, list_rubrics, load_rubric, resolve_rubric

__version__ = "0.1.0"

__all__ = [
    "Attack",
    "BackendError",
    "ClusterError",
    "ConfigError",
    "Criterion",
    "DataError",
    "FewShotExample",
    "Item",
    "JobConfig",
    "JobSummary",
    "JudgeConfig",
    "JudgeInfo",
    "JudgeRequest",
    "JudgeloopError",
    "Judgment",
    "JuryConfig",
    "JuryMember",
    "JurySummary",
    "JuryVerdict",
    "Message",
    "MissingDependencyError",
    "PairVerdict",
    "Rubric",
    "RubricError",
    "RubricRef",
    "SamplingConfig",
    "SamplingParams",
    "ScorePlan",
    "ScoringConfig",
    "accuracy",
    "aggregate",
    "apply_attack",
    "bootstrap_ci",
    "cohen_kappa",
    "combine_orders",
    "confusion_matrix",
    "eval_table",
    "fit_jury_weights",
    "fit_tie_threshold",
    "injection_report",
    "jury_alpha",
    "kendall_tau",
    "krippendorff_alpha",
    "length_bias",
    "list_rubrics",
    "load_attacks",
    "load_job_config",
    "load_rubric",
    "pair_verdicts",
    "pearson",
    "position_bias",
    "read_labelled",
    "read_logprobs",
    "read_pair_verdicts",
    "resolve_rubric",
    "run_eval",
    "run_job",
    "run_jury",
    "score_plan",
    "self_preference",
    "spearman",
]
