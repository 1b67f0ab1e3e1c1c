"""Human-labelled sets: the two row formats and the reader that checks them row by row.

- pairwise: ``{"id", "prompt", "response_a", "response_b", "label": "a"|"b"|"tie", "meta"?}``
- pointwise: ``{"id", "prompt", "response", "reference"?, "human_score", "scale": [min, max], "meta"?}``

The human vocabulary (a / b / tie) and its mapping to the judge's (A / B / tie) live in
:mod:`judge.core._labels`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from judge.core._config import label_text
from judge.core._errors import DataError
from judge.core._labels import HUMAN_LABELS, HumanLabel
from judge.core._records import stable_hash
from judge.inputs._data import DatasetReport

__all__ = ["Kind", "PairLabel", "PointLabel", "read_labelled"]

Kind = Literal["pairwise", "pointwise"]


class _Label(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(default="", description="Stable id; derived from the texts when absent.")
    prompt: str = Field(description="The prompt the response(s) answer.")
    meta: dict[str, Any] = Field(
        default_factory=dict, description="Free-form metadata; columns that are not fields are kept here."
    )

    @field_validator("id", mode="before")
    @classmethod
    def _integer_id_as_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    def content(self) -> str:
        """Everything but the id and meta: two rows with one id must agree on it."""
        return stable_hash(self.model_dump(exclude={"id", "meta"}))

    @model_validator(mode="after")
    def _derive_id(self) -> "_Label":
        # From the texts alone: two annotators' rows for one pair share the id, and the second,
        # if it disagrees, is a reported duplicate instead of a silent second vote.
        if not self.id:
            self.id = "item-" + stable_hash(self.model_dump(exclude={"id", "meta", "label", "human_score", "scale"}))[:16]
        return self


class PairLabel(_Label):
    """A human-labelled pair."""

    response_a: str = Field(description="First response.")
    response_b: str = Field(description="Second response.")
    label: HumanLabel = Field(description="The human verdict (see JobConfig.labels for other spellings).")


class PointLabel(_Label):
    """A human-scored response."""

    response: str = Field(description="The scored response.")
    reference: str | None = Field(default=None, description="Reference answer (reference rubrics).")
    human_score: float = Field(description="The human score, within scale.")
    scale: tuple[float, float] = Field(description="[min, max] of the human scores.")

    @model_validator(mode="after")
    def _in_scale(self) -> "PointLabel":
        lo, hi = self.scale
        if not lo < hi:
            raise ValueError(f"scale must be [min, max] with min < max, got {list(self.scale)}")
        if not lo <= self.human_score <= hi:
            raise ValueError(f"human_score must be in {lo}..{hi}, got {self.human_score}")
        return self


def _map_label(row: dict[str, Any], labels: dict[str, str]) -> str | None:
    """Replace the row's label by its mapped value; the reason when it is none of a, b, tie."""
    if "label" not in row:
        return None
    raw = row["label"]
    mapped = labels.get(label_text(raw))
    if mapped is not None:
        row["label"] = mapped
        return None
    if raw in HUMAN_LABELS:
        return None
    if labels:
        return f"label {raw!r} is not a, b or tie, nor one of the values 'labels' maps ({', '.join(map(repr, labels))})"
    return f"label {raw!r} is not a, b or tie; map the set's values in the config, e.g. labels: {{{raw}: a}}"


def read_labelled(
    path: str | Path,
    columns: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    report: DatasetReport | None = None,
    rejects_path: str | Path | None = None,
) -> tuple[Kind, list[Any], list[dict[str, Any]]]:
    """Rows of a labelled set, its format, and the rejected rows (line, error) that were skipped.

    The format is that of the first valid row (a row with a label column is a pair); rows of the
    other format are rejected. Columns are mapped and extra columns kept in meta as for
    ``judgeloop judge`` (:func:`judge.inputs.shape_row`); ``labels`` maps the set's label values
    (``model_a``, ``A``, ``1``...) to a, b, tie, and nothing else is guessed. A row repeating an
    earlier row's id and content is counted once; the same id with other content (texts or label)
    is a reject naming the line where the id was first seen.

    Args:
        path: the labelled set (any format :func:`judge.inputs.iter_rows` reads).
        columns: field -> column mapping (``JobConfig.columns``).
        labels: label value -> a, b or tie (``JobConfig.labels``).
        report: filled with the counts (rows, rejects, repeated rows, extra columns).
        rejects_path: where the rejected rows are written (JSONL, with line, error and row), if anywhere.

    Raises:
        DataError: the file is missing or holds no valid row.
    """
    from judge.inputs._data import iter_rows
    from judge.inputs._data import shape_row, validation_reason

    columns, labels = columns or {}, labels or {}
    report = report if report is not None else DatasetReport()
    label_col = columns.get("label", "label")
    kind: Kind | None = None
    rows: list[Any] = []
    rejects: list[dict[str, Any]] = []
    seen: dict[str, tuple[str, int]] = {}  # the rows are held in memory anyway
    rejected_rows: list[dict[str, Any]] = []
    for line, row, error in iter_rows(path):
        report.rows += 1
        extra: list[str] = []
        if error is None and row is not None:
            want: Kind = "pairwise" if label_col in row else "pointwise"
            model = PairLabel if want == "pairwise" else PointLabel
            shaped, error, extra = shape_row(row, model.model_fields, columns)
            if kind is not None and want != kind:
                error = f"a {want} row in a {kind} set"
            if error is None and shaped is not None:
                error = _map_label(shaped, labels)
            if error is None:
                try:
                    parsed = model.model_validate(shaped)
                except pydantic.ValidationError as exc:
                    error = validation_reason(exc)
                else:
                    first = seen.get(parsed.id)
                    if first is None:
                        kind = want
                        seen[parsed.id] = (parsed.content(), line)
                        rows.append(parsed)
                    elif first[0] != parsed.content():
                        report.duplicate_ids += 1
                        error = f"duplicate id {parsed.id!r} with different content (first seen at line {first[1]})"
                    else:
                        report.repeated += 1
                        continue
        if error is not None:
            report.rejected += 1
            report.first_reject = report.first_reject or f"line {line}: {error}"
            rejects.append({"line": line, "error": error})
            if rejects_path is not None:
                rejected_rows.append({"line": line, "error": error, "row": row})
            continue
        for name in extra:
            report.extra_columns[name] = report.extra_columns.get(name, 0) + 1
    report.items = len(rows)
    if rejects_path is not None and rejected_rows:
        from judge.core._io import atomic_write

        atomic_write(Path(rejects_path), "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rejected_rows))
    if kind is None:
        raise DataError(
            f"{path}: no valid labelled row: {report.rows} rows read, {len(rejects)} rejected"
            + (f" (listed in {rejects_path})" if rejects_path is not None and rejected_rows else "")
            + (f"; first reject, {report.first_reject}" if report.first_reject else "")
        )
    if kind == "pointwise" and len({r.scale for r in rows}) > 1:
        raise DataError(f"{path}: rows use several scales {sorted({r.scale for r in rows})}; evaluate one scale at a time")
    return kind, rows, rejects
