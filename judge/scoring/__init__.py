"""Requests from rubric and item, verdicts read from structured output or logprobs, and the Judge."""

from judge.scoring._judge import Judge
from judge.scoring._logprobs import VerdictReading, read_logprobs, value_starts
from judge.scoring._noise import LOGIT_NOISE, apply_noise, logit_margin, noise_bound
from judge.scoring._parse import ParsedVerdict, extract_json_object, parse_verdict, parse_with_prefill
from judge.scoring._plan import Method, ScorePlan, judge_tokenizer, sampling_for, score_plan, verdict_values
from judge.scoring._reward import (
    AsyncJudgeReward,
    JudgeReward,
    RewardRecord,
    RewardStats,
    areward_function,
    reward_function,
)
from judge.scoring._requests import (
    Orders,
    build_requests,
    item_fits,
    judgment_from,
    order_for,
    rebuild_messages,
    request_key,
)

__all__ = [
    "AsyncJudgeReward",
    "Judge",
    "JudgeReward",
    "LOGIT_NOISE",
    "Method",
    "Orders",
    "ParsedVerdict",
    "RewardRecord",
    "RewardStats",
    "ScorePlan",
    "VerdictReading",
    "apply_noise",
    "areward_function",
    "build_requests",
    "extract_json_object",
    "item_fits",
    "judge_tokenizer",
    "judgment_from",
    "logit_margin",
    "noise_bound",
    "order_for",
    "parse_verdict",
    "parse_with_prefill",
    "read_logprobs",
    "rebuild_messages",
    "request_key",
    "reward_function",
    "sampling_for",
    "score_plan",
    "value_starts",
    "verdict_values",
]
