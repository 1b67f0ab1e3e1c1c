"""What the review pages show and how a submitted form becomes a :class:`HumanLabel`.

Kept apart from the HTTP layer so the blind-review rules are plain functions:

* the review view carries no field of the judge's output (the template cannot leak what it is
  never given);
* a pair's display order is drawn per (sample, reviewer) from a recorded seed, and a choice of the
  response *shown* first or second is mapped back to the item's own A/B with an explicit table
  (never ``1 - x``);
* a submitted score is checked against the rubric's levels, a winner against ``allow_tie``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

from judge.audit._records import AuditSample, HumanLabel

__all__ = [
    "MAX_NOTE_CHARS",
    "CriterionView",
    "FormError",
    "ReviewView",
    "display_position",
    "label_from_form",
    "order_seed",
    "reveal_context",
    "review_view",
    "shown_order",
    "skip_label",
    "value_position",
]

#: Notes longer than this are refused (the request size limit bounds the rest).
MAX_NOTE_CHARS = 4000

Order = Literal["AB", "BA"]
# Display position -> the item's response, for each order the reviewer may see.
_POSITION_TO_ITEM: dict[str, dict[str, str]] = {
    "AB": {"first": "a", "second": "b", "tie": "tie"},
    "BA": {"first": "b", "second": "a", "tie": "tie"},
}
# The item's winner (as judges and reviewers record it) -> display position, for the reveal.
_ITEM_TO_POSITION: dict[str, dict[str, str]] = {
    "AB": {"a": "first", "b": "second", "tie": "tie"},
    "BA": {"a": "second", "b": "first", "tie": "tie"},
}


class FormError(ValueError):
    """A submitted label form is invalid; the message says which field and value."""


def order_seed(sample: AuditSample, reviewer: str) -> int:
    """The recorded seed of a reviewer's display order: a hash of sampling seed, sample and reviewer."""
    digest = hashlib.sha256(f"{sample.seed}\x00{sample.sample_id}\x00{reviewer}".encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big")


def shown_order(sample: AuditSample, reviewer: str) -> Order | None:
    """The order this reviewer sees a pair in (None for one response).

    Without the item itself the reviewer sees the judge's own first-order prompt, so AB.
    """
    if sample.kind != "pairwise":
        return None
    if sample.item is None:
        return "AB"
    return "BA" if order_seed(sample, reviewer) % 2 else "AB"


@dataclass
class CriterionView:
    """One criterion as the reviewer sees it."""

    name: str
    question: str
    levels: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class ReviewView:
    """Everything a review page shows, and nothing of the judge's decision."""

    sample_id: str
    kind: str
    prompt: str | None
    response: str | None
    reference: str | None
    first: str | None
    second: str | None
    order: Order | None
    rubric_id: str
    rubric_description: str
    instructions: str | None
    criteria: list[CriterionView]
    allow_tie: bool
    judge_messages: list[tuple[str, str]]


def _rubric_def(sample: AuditSample) -> dict[str, Any]:
    """The sample's rubric: as stored with it, else the library's rubric of that id if its hash matches."""
    if sample.rubric_def is not None:
        return sample.rubric_def
    from judge.core._errors import JudgeloopError
    from judge.inputs._rubric import resolve_rubric

    try:
        rubric = resolve_rubric(sample.rubric.id)
    except JudgeloopError:
        return {}
    # Another version's wording would show the reviewer levels the judge never saw.
    return rubric.model_dump(mode="json") if rubric.content_hash == sample.rubric.hash else {}


def _criteria(sample: AuditSample) -> tuple[list[CriterionView], str, str | None, bool]:
    rubric = _rubric_def(sample)
    criteria = []
    for c in rubric.get("criteria", []):
        scale = c.get("scale") or {}
        levels = sorted((int(k), str(v)) for k, v in scale.items())
        criteria.append(CriterionView(name=str(c["name"]), question=str(c.get("question", "")), levels=levels))
    return criteria, str(rubric.get("description", "")), rubric.get("instructions"), bool(rubric.get("allow_tie", True))


def review_view(sample: AuditSample, reviewer: str) -> ReviewView:
    """The blind view of ``sample`` for ``reviewer``: texts, rubric, display order; no verdict."""
    criteria, description, instructions, allow_tie = _criteria(sample)
    order = shown_order(sample, reviewer)
    item = sample.item
    first = second = None
    if item is not None and sample.kind == "pairwise":
        first, second = (item.response_a, item.response_b) if order == "AB" else (item.response_b, item.response_a)
    # Without the item, the reviewer reads what the judge read (minus the system instructions).
    messages = [] if item is not None else [(m.role, m.content) for m in sample.judge_input if m.role != "system"]
    return ReviewView(
        sample_id=sample.sample_id,
        kind=sample.kind,
        prompt=item.prompt if item else None,
        response=item.response if item else None,
        reference=item.reference if item else None,
        first=first,
        second=second,
        order=order,
        rubric_id=sample.rubric.id,
        rubric_description=description,
        instructions=instructions,
        criteria=criteria,
        allow_tie=allow_tie,
        judge_messages=messages,
    )


def display_position(winner: str | None, order: Order | None) -> str | None:
    """Where an item-terms winner (``a``/``b``/``tie``, any case) sat on this reviewer's page."""
    if winner is None or order is None:
        return None
    return _ITEM_TO_POSITION[order].get(winner.lower())


def _note(form: dict[str, str]) -> str | None:
    note = (form.get("note") or "").strip()
    if len(note) > MAX_NOTE_CHARS:
        raise FormError(f"note: at most {MAX_NOTE_CHARS} characters, got {len(note)}")
    return note or None


def label_from_form(
    sample: AuditSample, reviewer: str, form: dict[str, str], phase: Literal["before_reveal", "after_reveal"]
) -> HumanLabel:
    """The label a submitted review form records.

    Raises:
        FormError: a missing or out-of-range field, named with the value given.
    """
    view = review_view(sample, reviewer)
    value: str | dict[str, int]
    if sample.kind == "pairwise":
        choice = form.get("choice", "")
        if choice not in ("first", "second", "tie"):
            raise FormError(f"choice: must be first, second or tie, got {choice!r}")
        if choice == "tie" and not view.allow_tie:
            raise FormError("choice: this rubric does not allow a tie")
        value = _POSITION_TO_ITEM[view.order or "AB"][choice]
    else:
        if not view.criteria:
            raise FormError("this sample carries no rubric definition, so it cannot be scored here")
        scores: dict[str, int] = {}
        for c in view.criteria:
            raw = form.get(f"score.{c.name}", "")
            allowed = [lv for lv, _ in c.levels]
            if not raw.lstrip("-").isdigit() or int(raw) not in allowed:
                raise FormError(f"score.{c.name}: must be one of {allowed}, got {raw!r}")
            scores[c.name] = int(raw)
        value = scores
    return HumanLabel(
        sample_id=sample.sample_id,
        reviewer=reviewer,
        phase=phase,
        value=value,
        shown_order=view.order,
        order_seed=order_seed(sample, reviewer) if view.order is not None else None,
        note=_note(form),
        source="web",
    )


def skip_label(sample: AuditSample, reviewer: str, form: dict[str, str]) -> HumanLabel:
    """The row that records a skip (with the reviewer's note, if any)."""
    order = shown_order(sample, reviewer)
    return HumanLabel(
        sample_id=sample.sample_id,
        reviewer=reviewer,
        phase="before_reveal",
        skipped=True,
        shown_order=order,
        order_seed=order_seed(sample, reviewer) if order is not None else None,
        note=_note(form),
        source="web",
    )


def reveal_context(sample: AuditSample, reviewer: str) -> dict[str, Any]:
    """The judge's decision in the reviewer's display terms, for the reveal page."""
    out = sample.judge_output
    order = shown_order(sample, reviewer)
    winner = out.winner
    position = None
    if winner in ("A", "B", "tie"):
        position = display_position(winner, order)
    return {
        "status": out.status,
        "scores": out.scores or {},
        "overall": out.overall,
        "winner": winner,
        "winner_position": position,
        "p_first": (out.p_a if order == "AB" else 1.0 - out.p_a) if out.p_a is not None and order else None,
        "rationale": out.rationale,
        "error": out.error,
        "raw_output": out.raw_output,
    }


def value_position(value: Any, order: Order | None) -> Any:
    """A stored label value in display terms (pairwise) or unchanged (scores)."""
    if isinstance(value, str):
        return display_position(value, order)
    return value
