"""Plain-value helpers for scoring tests: plans, sampling and requests without any job config."""

from __future__ import annotations

from typing import Any

from judge.core._records import Item, JudgeRequest, SamplingParams
from judge.inputs._rubric import Rubric
from judge.scoring import ScorePlan, build_requests, judge_tokenizer, sampling_for, score_plan

BUNDLED = object()  # tokenizer=BUNDLED: the bundled model's tokenizer


def plan(rubric: Rubric, method: str = "json", top_logprobs: int = 20, max_tokens: int = 256, tokenizer: Any = None) -> ScorePlan:
    tok = judge_tokenizer("vllm", "bundled") if tokenizer is BUNDLED else tokenizer
    return score_plan(rubric, method, top_logprobs, max_tokens, tok)  # type: ignore[arg-type]


def sampling(rubric: Rubric, method: str = "json", max_tokens: int = 256, temperature: float = 0.0, seed: int = 0,
             tokenizer: Any = None) -> SamplingParams:
    return sampling_for(rubric, plan(rubric, method, max_tokens=max_tokens, tokenizer=tokenizer), temperature, seed=seed)


def build(rubric: Rubric, item: Item, judge_id: str = "judge", *, method: str = "json", max_tokens: int = 256,
          orders: str = "both", sanitize: bool = True, seed: int = 0, tokenizer: Any = None) -> list[JudgeRequest]:
    p = plan(rubric, method, max_tokens=max_tokens, tokenizer=tokenizer)
    return build_requests(rubric, item, judge_id, p, sampling_for(rubric, p, seed=seed), orders=orders,  # type: ignore[arg-type]
                          sanitize=sanitize, seed=seed)
