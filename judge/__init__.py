"""judgeloop's judge: rubrics, prompts, backends, scoring, the batch runner, analysis and eval.

Layers, from the bottom up (each uses only those below it): ``core`` (errors, records, configs),
``inputs`` (rubrics, prompts, datasets), ``backends``, ``scoring``, ``runner``, ``analysis``, ``eval``.

Importing ``judge`` is fast: vLLM, transformers and Ray are imported only by the code that uses them.
"""

from judge.core import (
    BackendError,
    ClusterError,
    ConfigError,
    DataError,
    JudgeloopError,
    MissingDependencyError,
    RubricError,
)
from judge.analysis import length_bias, position_bias, self_preference
from judge.core import (
    GenerateConfig,
    GenerationSamplingConfig,
    JobConfig,
    JudgeConfig,
    JudgeSpec,
    JuryConfig,
    JuryMember,
    ModelConfig,
    SamplingConfig,
    ScoringConfig,
    load_generate_config,
    load_job_config,
    load_judge_spec,
)
from judge.runner import JobSummary, run_job
from judge.eval import EvalReport, eval_table, fit_jury_weights, fit_tie_threshold, read_labelled, run_eval
from judge.analysis import JurySummary, JuryVerdict, aggregate, jury_alpha
from judge.runner import run_jury
from judge.analysis import (
    accuracy,
    bootstrap_ci,
    cohen_kappa,
    confusion_matrix,
    kendall_tau,
    krippendorff_alpha,
    pearson,
    spearman,
)
from judge.eval import Attack, apply_attack, injection_report, load_attacks
from judge.scoring import Judge, ScorePlan, read_logprobs, score_plan
from judge.scoring import AsyncJudgeReward, JudgeReward, RewardStats, areward_function, reward_function
from judge.analysis import PairVerdict, combine_orders, pair_verdicts, read_pair_verdicts
from judge.core import Item, JudgeInfo, JudgeRequest, Judgment, Message, RubricRef, SamplingParams
from judge.core._records import JudgeTrace
from judge.inputs import Criterion, FewShotExample, Rubric, list_rubrics, load_rubric, resolve_rubric

__version__ = "0.1.0"

__all__ = [
    "AsyncJudgeReward",
    "Attack",
    "BackendError",
    "ClusterError",
    "ConfigError",
    "Criterion",
    "DataError",
    "EvalReport",
    "FewShotExample",
    "GenerateConfig",
    "GenerationSamplingConfig",
    "Item",
    "JobConfig",
    "JobSummary",
    "Judge",
    "JudgeConfig",
    "JudgeSpec",
    "JudgeTrace",
    "JudgeInfo",
    "JudgeReward",
    "JudgeRequest",
    "JudgeloopError",
    "Judgment",
    "JuryConfig",
    "JuryMember",
    "JurySummary",
    "JuryVerdict",
    "Message",
    "MissingDependencyError",
    "ModelConfig",
    "PairVerdict",
    "Rubric",
    "RubricError",
    "RubricRef",
    "RewardStats",
    "SamplingConfig",
    "SamplingParams",
    "ScorePlan",
    "ScoringConfig",
    "accuracy",
    "aggregate",
    "apply_attack",
    "areward_function",
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
    "load_generate_config",
    "load_job_config",
    "load_judge_spec",
    "load_rubric",
    "pair_verdicts",
    "pearson",
    "position_bias",
    "read_labelled",
    "read_logprobs",
    "read_pair_verdicts",
    "resolve_rubric",
    "reward_function",
    "run_eval",
    "run_job",
    "run_jury",
    "score_plan",
    "self_preference",
    "spearman",
]
