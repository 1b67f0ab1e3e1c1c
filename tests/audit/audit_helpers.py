"""Builders of audit records for the audit tests (no model: judgments are written directly)."""

from __future__ import annotations

from judge.audit import AuditSample, JudgeOutput
from judge.core._records import Item, Judgment, Message, RubricRef


def make_sample(i: int, kind: str = "pairwise", stratum: str = "uniform", prob: float | None = 0.5,
                run_id: str = "run-0", fingerprint: str = "fp-1", winner: str = "A",
                scores: dict[str, int] | None = None) -> AuditSample:
    """A sample of decision ``i`` (pairwise by default) with the given design stratum and probability."""
    if kind == "pairwise":
        item = Item(id=f"it-{i}", prompt=f"prompt {i}", response_a=f"a {i}", response_b=f"b {i}")
        out = JudgeOutput(status="scored", winner=winner, p_a=1.0 if winner == "A" else 0.0)  # type: ignore[arg-type]
        rubric_def = {"criteria": [{"name": "overall", "question": "Which is better?"}]}
    else:
        item = Item(id=f"it-{i}", prompt=f"prompt {i}", response=f"r {i}")
        out = JudgeOutput(status="scored", scores=scores or {"helpful": 3}, overall=0.5)
        rubric_def = {"criteria": [{"name": "helpful", "question": "Helpful?", "scale": {1: "no", 3: "some", 5: "very"}}]}
    return AuditSample(
        sample_id=f"s-{run_id}-{i}", run_id=run_id, judgment_key=f"k-{i}", judgment_keys=[f"k-{i}"],
        item_id=item.id, rubric=RubricRef(id="r", version=1, hash="rh-1"), rubric_def=rubric_def,
        kind=kind,  # type: ignore[arg-type]
        stratum=stratum,  # type: ignore[arg-type]
        inclusion_prob=None if stratum == "handpicked" else prob, population=100,
        judge_input=[Message(role="user", content=f"judge this {i}")], item=item, judge_output=out,
        judge_fingerprint=fingerprint, rubric_hash="rh-1", prompt_version="pv-1", seed=0,
    )


def make_judgment(item_id: str, kind: str = "pointwise", *, order: str | None = None, winner: str | None = None,
                  scores: dict[str, int] | None = None, overall: float | None = None, margin: float | None = None,
                  status: str = "scored", rubric_hash: str = "rh-1", rubric_id: str = "r",
                  model_hash: str = "fp-1", prompt_hash: str = "ph") -> "Judgment":
    """A judgment written directly (as the engine would), for sampling and agreement tests."""
    from judge.core._records import JudgeInfo, Judgment, SamplingParams, stable_hash

    extra: dict = {}
    if margin is not None:
        extra["margin"] = {"winner" if kind == "pairwise" else "helpful": margin}
    scored = status == "scored"
    return Judgment(
        key=stable_hash([item_id, kind, order, rubric_hash, model_hash]), item_id=item_id,
        rubric=RubricRef(id=rubric_id, version=1, hash=rubric_hash),
        judge=JudgeInfo(model="m", model_hash=model_hash, backend="scripted"), sampling=SamplingParams(),
        prompt_hash=prompt_hash, kind=kind, order=order, status=status,  # type: ignore[arg-type]
        scores=(scores or {"helpful": 3}) if scored and kind != "pairwise" else None,
        overall=(0.5 if overall is None else overall) if scored and kind != "pairwise" else None,
        winner=winner if scored else None,  # type: ignore[arg-type]
        raw_output="{}", error=None if scored else "unparseable", extra=extra,
    )
