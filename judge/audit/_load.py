"""Reading what a sampling run needs: judgments, the judged items, the rubrics and jury verdicts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import pydantic

from judge.core._errors import DataError
from judge.core._records import Item, Judgment

__all__ = ["load_items", "load_judgments", "load_jury_agreement", "load_rubrics"]


def load_judgments(path: str | Path) -> list[Judgment]:
    """Every judgment of a judgments JSONL file.

    Raises:
        DataError: the file is missing or a line is not a judgment (the line is named).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no judgments file there")
    out = []
    with p.open("r", encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                out.append(Judgment.model_validate_json(line))
            except pydantic.ValidationError as exc:
                err = exc.errors(include_url=False)[0]
                where = ".".join(str(x) for x in err["loc"]) or "line"
                raise DataError(f"{p}:{n}: not a judgment ({where}: {err['msg']})") from None
    return out


def load_items(path: str | Path, wanted: set[str]) -> dict[str, Item]:
    """The items of a dataset whose ids are in ``wanted`` (rows that are not items are passed over)."""
    from judge.inputs._data import iter_rows

    out: dict[str, Item] = {}
    for _, row, error in iter_rows(path):
        if error is not None or row is None:
            continue
        try:
            item = Item.model_validate({k: v for k, v in row.items() if k in Item.model_fields})
        except pydantic.ValidationError:
            continue
        if item.id in wanted:
            out[item.id] = item
    return out


def load_rubrics(refs: Iterable[str], judgments: list[Judgment]) -> dict[str, Any]:
    """Rubrics by content hash: those named, else the library's rubrics the judgments name (when their hash matches)."""
    from judge.inputs._rubric import resolve_rubric

    out: dict[str, Any] = {}
    for ref in refs:
        r = resolve_rubric(ref)
        out[r.content_hash] = r
    if not out:
        for rid, h in {(j.rubric.id, j.rubric.hash) for j in judgments}:
            try:
                r = resolve_rubric(rid)
            except Exception:  # a rubric outside the library: its texts are not needed to sample
                continue
            if r.content_hash == h:
                out[h] = r
    return out


def load_jury_agreement(path: str | Path) -> dict[str, float]:
    """Per item id, the share of (weighted) votes for the jury's verdict, from a jury verdicts JSONL file."""
    p = Path(path)
    out: dict[str, float] = {}
    with p.open("r", encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{p}:{n}: not JSON ({exc.msg})") from None
            if row.get("agreement") is not None:
                out[str(row["item_id"])] = float(row["agreement"])
    return out
