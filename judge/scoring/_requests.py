"""Requests from rubric and item, and judgments from the judge's completions.

Pairwise judgments report winners and probabilities in terms of the *item's* response_a/response_b,
whichever order they were shown in: the mapping swaps labels explicitly (never ``1 - x``
arithmetic, which would turn a failure marker into a verdict).
"""

from __future__ import annotations

from typing import Any, Literal

from judge.backends._base import Completion
from judge.core._records import (
    Item,
    JudgeInfo,
    JudgeRequest,
    JudgeTrace,
    Judgment,
    RubricRef,
    SamplingParams,
    stable_hash,
    texts_hash,
)
from judge.inputs._prompts import PROMPT_VERSION, prompt_hash, render_messages
from judge.inputs._rubric import Rubric
from judge.scoring._logprobs import VerdictReading, read_logprobs
from judge.scoring._noise import apply_noise
from judge.scoring._parse import parse_with_prefill
from judge.scoring._plan import ScorePlan

__all__ = ["Orders", "build_requests", "item_fits", "judgment_from", "order_for", "rebuild_messages", "request_key"]

Orders = Literal["AB", "both", "random"]


def request_key(
    rubric: Rubric, judge_id: str, sampling: SamplingParams, p_hash: str, order: str | None = None
) -> str:
    """Content address of a request: the same key means the same judgment.

    A pairwise request's order is part of it: a pair shown as (A, B) and its mirror image (another
    item with the two responses swapped) shown as (B, A) give the same prompt, but their verdicts
    mean opposite things in their items' terms.
    """
    parts: list[Any] = [rubric.content_hash, judge_id, sampling.model_dump(mode="json"), p_hash]
    if order is not None:
        parts.append(order)
    return stable_hash(parts)


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




def order_for(item_id: str, seed: int) -> Literal["AB", "BA"]:
    """The order a single-order pairwise job shows an item in: seeded, stable, recorded."""
    return "AB" if int(stable_hash(["pair-order", seed, item_id])[:8], 16) % 2 == 0 else "BA"




def build_requests(
    rubric: Rubric,
    item: Item,
    judge_id: str,
    plan: ScorePlan,
    sampling: SamplingParams,
    *,
    orders: Orders = "both",
    sanitize: bool = True,
    seed: int = 0,
) -> list[JudgeRequest]:
    """The requests that judge ``item`` by ``rubric`` (two for pairwise in both orders).

    Args:
        rubric: the rubric.
        item: the item (untrusted texts).
        judge_id: the judge's identity (part of every key).
        plan: the rubric's score plan (:func:`~judge.scoring.score_plan`).
        sampling: the decoding parameters (:func:`~judge.scoring.sampling_for`).
        orders: pairwise rubrics: ``both``, ``AB`` only, or one order per item drawn with ``seed``.
        sanitize: defuse verdict-shaped fragments in the item's texts.
        seed: the seed of the ``random`` order draw.
    """
    ref = RubricRef(id=rubric.id, version=rubric.version, hash=rubric.content_hash)
    shown: list[Any] = [None]
    if rubric.mode == "pairwise":
        if orders == "both":
            shown = ["AB", "BA"]
        elif orders == "random":
            shown = [order_for(item.id, seed)]
        else:
            shown = ["AB"]
    trace = JudgeTrace(
        sanitize=sanitize, texts_hash=texts_hash(item), prefill=plan.prefill, prompt_version=PROMPT_VERSION
    )
    out = []
    for order in shown:
        messages = render_messages(rubric, item, order, sanitize=sanitize, prefill=plan.prefill)
        ph = prompt_hash(messages)
        out.append(
            JudgeRequest(
                key=request_key(rubric, judge_id, sampling, ph, order),
                item_id=item.id,
                rubric=ref,
                kind=rubric.mode,
                order=order,
                messages=messages,
                prompt_hash=ph,
                sampling=sampling,
                trace=trace,
            )
        )
    return out


def rebuild_messages(judgment: Judgment, item: Item, rubric: Rubric) -> list[Any]:
    """The exact messages the judge saw for ``judgment``, rebuilt from its item, rubric and trace.

    Raises:
        ValueError: the judgment has no trace, or the item, rubric or prompt template is not the
            one it was judged with (the hash or version differs).
    """
    t = judgment.trace
    if t is None:
        raise ValueError(f"judgment {judgment.key[:12]} has no trace (written before traces were recorded)")
    if t.texts_hash != texts_hash(item):
        raise ValueError(f"item {item.id!r} does not hold the texts judgment {judgment.key[:12]} was made on")
    if rubric.content_hash != judgment.rubric.hash:
        raise ValueError(f"rubric {rubric.id!r} is not the version judgment {judgment.key[:12]} used")
    if t.prompt_version != PROMPT_VERSION:
        raise ValueError(f"judgment used prompt template version {t.prompt_version}, this is {PROMPT_VERSION}")
    return render_messages(rubric, item, judgment.order, sanitize=t.sanitize, prefill=t.prefill)


_SWAP = {"A": "B", "B": "A", "tie": "tie"}


def _in_item_terms(label: str, order: str | None) -> str:
    """A label as shown in ``order``, as the item's label (explicit swap, never arithmetic)."""
    return _SWAP[label] if order == "BA" else label




def _round(x: float) -> float:
    return round(x, 6)


def _traced(request: JudgeRequest, completion: Completion, info: JudgeInfo, latency_s: float) -> dict[str, Any]:
    """The fields every judgment of ``request`` carries, scored or not: where it came from and what it cost."""
    return {
        "key": request.key,
        "item_id": request.item_id,
        "rubric": request.rubric,
        "judge": info,
        "sampling": request.sampling,
        "prompt_hash": request.prompt_hash,
        "kind": request.kind,
        "order": request.order,
        "raw_output": completion.text,
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "latency_s": round(latency_s, 6),
        "trace": request.trace,
    }


def judgment_from(
    request: JudgeRequest, rubric: Rubric, completion: Completion, info: JudgeInfo, latency_s: float
) -> Judgment:
    """Score one completion. Unparseable output becomes an ``unscored`` judgment.

    A request that asked for logprobs is read by them: the expected score per criterion (and the
    overall score from those), or the probability that each response wins. Unscored when no value
    of a verdict key is among the top-k logprobs. A backend that returns no logprobs leaves the
    written verdict, marked ``extra.logprobs: missing``.
    """
    if completion.error is not None:
        # A request that failed on its own (the backend said so): unscored, with the backend's words.
        return Judgment(
            **_traced(request, completion, info, latency_s),
            status="unscored",
            error=f"{completion.error_kind or 'backend'} error: {completion.error}",
            extra={"error_kind": completion.error_kind or "backend"},
        )
    last = request.messages[-1] if request.messages else None
    prefill = last.content if last is not None and last.role == "assistant" else None
    verdict = parse_with_prefill(rubric, prefill, completion.text)
    extra: dict[str, Any] = dict(verdict.extra)
    by_logprobs = request.sampling.logprobs is not None
    extra["method"] = "logprob" if by_logprobs else "json"
    if prefill is not None:
        extra["prefill"] = prefill
    error = verdict.error
    scores = verdict.scores
    winner = verdict.winner
    overall: float | None = None
    readings: dict[str, VerdictReading] = {}
    if by_logprobs:
        if not completion.tokens:
            extra["logprobs"] = "missing"
        else:
            readings, lp_error = read_logprobs(rubric, completion.tokens, prefill)
            if lp_error is not None:
                error = lp_error
            elif error is not None:
                # The text did not parse but every verdict token did: take the most likely values.
                error = None
                if rubric.mode == "pairwise":
                    d = readings["winner"].distribution
                    winner = max(d, key=lambda v: d[v])
                else:
                    scores = {k: int(max(r.distribution, key=lambda v: r.distribution[v])) for k, r in readings.items()}
    if error is not None and completion.finish_reason == "length" and request.sampling.choices is None:
        # The likely cause, and its fix. (A prefilled verdict stops at max_tokens by design.)
        error = f"output truncated at max_tokens ({error})"
    scored = error is None
    if scored and readings:
        extra["distribution"] = {k: {v: _round(p) for v, p in r.distribution.items()} for k, r in readings.items()}
        extra["entropy"] = {k: _round(r.entropy) for k, r in readings.items()}
        extra["confidence"] = {k: _round(r.confidence) for k, r in readings.items()}
        extra["margin"] = {k: _round(r.margin) for k, r in readings.items()}
        extra["mass"] = {k: _round(r.mass) for k, r in readings.items()}
        if rubric.mode == "pairwise":
            shown = readings["winner"].distribution
            item_probs = {_in_item_terms(v, request.order): p for v, p in shown.items()}
            extra["p_a"] = _round(item_probs.get("A", 0.0) + 0.5 * item_probs.get("tie", 0.0))
            extra["probs"] = {v: _round(p) for v, p in item_probs.items()}
        else:
            expected = {k: r.expected() for k, r in readings.items()}
            extra["expected"] = {k: _round(v) for k, v in expected.items()}
            overall = rubric.overall(expected)  # type: ignore[arg-type]
    if scored and readings:
        # A margin below the dtype's numeric noise is not reproducible: say so (a pair: a tie).
        noisy_winner = apply_noise(readings, info.dtype, extra, rubric.mode == "pairwise", winner)
        if noisy_winner != winner:
            extra["winner_before_noise"] = _in_item_terms(winner, request.order) if winner else winner
            winner = noisy_winner
    if scored and overall is None and scores:
        overall = rubric.overall(scores)
    if winner in ("A", "B") and request.order == "BA":
        winner = _in_item_terms(winner, "BA")  # positions were swapped; report in item terms
    if scored and rubric.mode == "pairwise" and "p_a" not in extra and winner is not None:
        extra["p_a"] = {"A": 1.0, "B": 0.0, "tie": 0.5}[winner]
        extra["p_source"] = "verdict"
    return Judgment(
        **_traced(request, completion, info, latency_s),
        status="scored" if scored else "unscored",
        scores=scores if scored else None,
        overall=_round(overall) if scored and overall is not None else None,
        winner=winner if scored else None,  # type: ignore[arg-type]
        rationale=verdict.rationale,
        error=error,
        extra=extra,
    )
