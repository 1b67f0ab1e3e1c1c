"""Requests from rubric and item, verdicts read from structured output or logprobs."""

from judge.scoring._scoring import (
    ParsedVerdict,
    ScorePlan,
    VerdictReading,
    build_requests,
    extract_json_object,
    item_fits,
    judgment_from,
    order_for,
    parse_verdict,
    read_logprobs,
    request_key,
    sampling_for,
    score_plan,
)

__all__ = [
    "ParsedVerdict",
    "ScorePlan",
    "VerdictReading",
    "build_requests",
    "extract_json_object",
    "item_fits",
    "judgment_from",
    "order_for",
    "parse_verdict",
    "read_logprobs",
    "request_key",
    "sampling_for",
    "score_plan",
]
