"""Turning judge output into scores.

A verdict that cannot be read is *unscored*: the raw text and the reason are kept and no number is
invented. Parsing is strict about the rubric (every criterion present, each value on its scale) and
lenient only about wrapping (code fences or prose around a single JSON object).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from judge.backends._base import Completion
from judge.config import JobConfig
from judge.prompts import output_schema, prompt_hash, render_messages
from judge.records import Item, JudgeInfo, JudgeRequest, Judgment, RubricRef, SamplingParams, stable_hash
from judge.rubric import Rubric

__all__ = [
    "ParsedVerdict",
    "build_requests",
    "extract_json_object",
    "item_fits",
    "judgment_from",
    "parse_verdict",
    "request_key",
    "sampling_for",
]


@dataclass
class ParsedVerdict:
    """Scores or a pairwise winner read from one judge output; ``error`` set when unscored."""

    scores: dict[str, int] | None = None
    winner: str | None = None
    rationale: str | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def scored(self) -> bool:
        return self.error is None


def extract_json_object(text: str) -> dict[str, Any] | None:
    """The first complete top-level JSON object in ``text``, or None."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            obj, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
            continue
        if isinstance(obj, dict):
            return obj
        start = text.find("{", start + 1)
    return None


def parse_verdict(rubric: Rubric, text: str) -> ParsedVerdict:
    """Read a JSON verdict for ``rubric`` from the judge's text."""
    obj = extract_json_object(text)
    if obj is None:
        return ParsedVerdict(error="no JSON object in the output")
    rationale = obj.get("rationale")
    rationale = rationale if isinstance(rationale, str) else None
    if rubric.mode == "pairwise":
        winner = obj.get("winner")
        if not isinstance(winner, str):
            return ParsedVerdict(error="missing 'winner'", rationale=rationale)
        norm = {"a": "A", "b": "B", "tie": "tie"}.get(winner.strip().lower())
        if norm is None or (norm == "tie" and not rubric.allow_tie):
            allowed = "A, B, tie" if rubric.allow_tie else "A, B"
            return ParsedVerdict(error=f"winner must be one of {allowed}, got {winner!r}", rationale=rationale)
        return ParsedVerdict(winner=norm, rationale=rationale)
    scores: dict[str, int] = {}
    for c in rubric.criteria:
        assert c.scale is not None
        value = obj.get(c.name)
        if value is None:
            return ParsedVerdict(error=f"missing score for {c.name!r}", rationale=rationale)
        # ASCII digits only: str.isdigit() also accepts '²', which int() then rejects with a crash.
        if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value):
            value = int(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        # bool is an int (True == 1): without the check, true would score as 1.
        if isinstance(value, bool) or not isinstance(value, int) or value not in c.scale:
            return ParsedVerdict(
                error=f"{c.name} must be an integer in {c.min_score}..{c.max_score}, got {value!r}",
                rationale=rationale,
            )
        scores[c.name] = value
    return ParsedVerdict(scores=scores, rationale=rationale)


# ----------------------------------------------------------------------------------------------
# Requests and judgments


def request_key(rubric: Rubric, judge_id: str, sampling: SamplingParams, p_hash: str) -> str:
    """Content address of a request: the same key means the same judgment."""
    return stable_hash([rubric.content_hash, judge_id, sampling.model_dump(mode="json"), p_hash])


def item_fits(rubric: Rubric, item: Item) -> str | None:
    """Why ``item`` cannot be judged by ``rubric``, or None."""
    if rubric.mode == "pairwise":
        missing = [f for f in ("response_a", "response_b") if getattr(item, f) is None]
    elif rubric.mode == "reference":
        missing = [f for f in ("response", "reference") if getattr(item, f) is None]
    else:
        missing = [f for f in ("response",) if getattr(item, f) is None]
    if missing:
        return f"rubric {rubric.id!r} ({rubric.mode}) needs field(s) {missing}"
    return None


def sampling_for(rubric: Rubric, cfg: JobConfig) -> SamplingParams:
    """Decoding parameters of a rubric's requests: the job's settings plus the rubric's schema."""
    s = cfg.sampling
    return SamplingParams(
        temperature=s.temperature,
        top_p=s.top_p,
        max_tokens=s.max_tokens,
        seed=s.seed,
        json_schema=output_schema(rubric),
    )


def build_requests(rubric: Rubric, item: Item, cfg: JobConfig, judge_id: str) -> list[JudgeRequest]:
    """The requests that judge ``item`` by ``rubric`` (two for pairwise in both orders)."""
    sampling = sampling_for(rubric, cfg)
    ref = RubricRef(id=rubric.id, version=rubric.version, hash=rubric.content_hash)
    orders: list[Any] = [None]
    if rubric.mode == "pairwise":
        orders = ["AB", "BA"] if cfg.pairwise_orders == "both" else ["AB"]
    out = []
    for order in orders:
        messages = render_messages(rubric, item, order)
        ph = prompt_hash(messages)
        out.append(
            JudgeRequest(
                key=request_key(rubric, judge_id, sampling, ph),
                item_id=item.id,
                rubric=ref,
                kind=rubric.mode,
                order=order,
                messages=messages,
                prompt_hash=ph,
                sampling=sampling,
            )
        )
    return out


def judgment_from(
    request: JudgeRequest, rubric: Rubric, completion: Completion, info: JudgeInfo, latency_s: float
) -> Judgment:
    """Score one completion. Unparseable output becomes an ``unscored`` judgment."""
    verdict = parse_verdict(rubric, completion.text)
    winner = verdict.winner
    if winner in ("A", "B") and request.order == "BA":
        winner = "B" if winner == "A" else "A"  # positions were swapped; report in item terms
    error = verdict.error
    if error is not None and completion.finish_reason == "length":
        error = f"output truncated at max_tokens ({error})"  # the likely cause, and its fix
    scored = error is None
    return Judgment(
        key=request.key,
        item_id=request.item_id,
        rubric=request.rubric,
        judge=info,
        sampling=request.sampling,
        prompt_hash=request.prompt_hash,
        kind=request.kind,
        order=request.order,
        status="scored" if scored else "unscored",
        scores=verdict.scores if scored else None,
        overall=rubric.overall(verdict.scores) if scored and verdict.scores else None,
        winner=winner if scored else None,
        rationale=verdict.rationale,
        raw_output=completion.text,
        error=error,
        extra=verdict.extra,
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
        latency_s=round(latency_s, 6),
    )
