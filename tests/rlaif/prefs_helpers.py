"""Judged runs written from records: pairwise judgments in both orders, pointwise scores, their items.

The pair verdicts file is made by the real combiner (``judge.analysis.pair_verdicts``), as the end
step of a job writes it; only the judge's per-order outputs are given.
"""

from __future__ import annotations

import json
from pathlib import Path

from judge.analysis import pair_verdicts
from judge.core._records import JudgeInfo, Judgment, RubricRef, SamplingParams, stable_hash
from judge.inputs._rubric import resolve_rubric

PAIR_RUBRIC = resolve_rubric("instruction_following")
POINT_RUBRIC = resolve_rubric("helpfulness")
JUDGE = JudgeInfo(model="tiny-judge", model_hash="fp-tiny-judge", backend="scripted")


def _ref(rubric) -> RubricRef:
    return RubricRef(id=rubric.id, version=rubric.version, hash=rubric.content_hash)


def pair_judgment(item_id: str, order: str, p_a: float | None, winner: str | None = None) -> Judgment:
    """One order's judgment in the item's terms; ``p_a`` None makes it unscored."""
    if p_a is None:
        return Judgment(key=stable_hash([item_id, order])[:24], item_id=item_id, rubric=_ref(PAIR_RUBRIC), judge=JUDGE,
                        sampling=SamplingParams(), prompt_hash="h", kind="pairwise", order=order, status="unscored",
                        raw_output="???", error="no verdict")
    w = winner or ("A" if p_a > 0.5 else "B" if p_a < 0.5 else "tie")
    return Judgment(key=stable_hash([item_id, order])[:24], item_id=item_id, rubric=_ref(PAIR_RUBRIC), judge=JUDGE,
                    sampling=SamplingParams(), prompt_hash="h", kind="pairwise", order=order, status="scored",
                    winner=w, raw_output=w, extra={"p_a": p_a})


def point_judgment(item_id: str, overall: float) -> Judgment:
    score = 1 + round(overall * 4)
    return Judgment(key=stable_hash([item_id, "point"])[:24], item_id=item_id, rubric=_ref(POINT_RUBRIC), judge=JUDGE,
                    sampling=SamplingParams(), prompt_hash="h", kind="pointwise", status="scored",
                    scores={c.name: score for c in POINT_RUBRIC.criteria}, overall=overall, raw_output=str(score))


def write_run(tmp: Path, items: list[dict], judgments: list[Judgment], name: str = "run") -> tuple[Path, Path]:
    """A run directory (judgments.jsonl, judgments.verdicts.jsonl) and the dataset file beside it."""
    run = tmp / name
    run.mkdir(parents=True)
    (run / "judgments.jsonl").write_text("".join(j.model_dump_json() + "\n" for j in judgments), encoding="utf-8")
    vs = pair_verdicts(judgments)
    if vs:
        (run / "judgments.verdicts.jsonl").write_text("".join(v.model_dump_json() + "\n" for v in vs), encoding="utf-8")
    data = tmp / f"{name}-items.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in items), encoding="utf-8")
    return run, data


def pair_item(i: int, a: str | None = None, b: str | None = None, prompt: str | None = None) -> dict:
    return {"id": f"pair-{i}", "prompt": prompt or f"Question number {i}: name a fruit.",
            "response_a": a or f"An apple, the {i}th fruit of the list.", "response_b": b or f"I do not know ({i})."}


def both(item_id: str, p_ab: float | None, p_ba: float | None) -> list[Judgment]:
    return [pair_judgment(item_id, "AB", p_ab), pair_judgment(item_id, "BA", p_ba)]
