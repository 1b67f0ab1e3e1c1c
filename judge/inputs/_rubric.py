"""Rubrics: what a judge is asked to assess, and how.

A rubric is a YAML file validated by the pydantic models below. It has an explicit ``id`` and
``version`` and a stable content hash (:attr:`Rubric.content_hash`) that every judgment records,
so a score can always be traced back to the exact wording that produced it.

Example::

    id: helpfulness
    version: 1
    mode: pointwise
    description: How well the response helps the user with their request.
    criteria:
      - name: helpfulness
        question: Does the response address the user's request usefully?
        scale:
          1: Ignores or misreads the request.
          ...
          5: Fully and efficiently resolves the request.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from judge.core._errors import RubricError
from judge.core._yaml import load_model

__all__ = [
    "Criterion",
    "FewShotExample",
    "Rubric",
    "RUBRIC_DIR",
    "list_rubrics",
    "load_rubric",
    "resolve_rubric",
]

Mode = Literal["pointwise", "pairwise", "reference"]

#: The rubric library shipped with judgeloop.
RUBRIC_DIR = Path(__file__).resolve().parents[1] / "rubrics"

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Criterion(_Strict):
    """One thing the judge assesses."""

    name: str = Field(description="Identifier used as the key of this criterion's score (lower_snake_case).")
    question: str = Field(min_length=1, description="The question the judge answers for this criterion.")
    weight: float = Field(default=1.0, gt=0, description="Relative weight in the overall score (> 0).")
    scale: dict[int, str] | None = Field(
        default=None,
        description="Integer score levels, each with a description of what earns it. "
        "Required in pointwise and reference modes; levels must be consecutive integers.",
    )
    principles: list[str] = Field(
        default_factory=list,
        description="Ids of the model spec's principles this criterion checks (see judge.inputs.ModelSpec).",
    )

    @field_validator("name")
    @classmethod
    def _name_is_identifier(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(
                "must be lower_snake_case: a letter, then letters, digits or '_' (at most 48 characters)"
            )
        return v

    @field_validator("scale")
    @classmethod
    def _scale_is_consecutive(cls, v: dict[int, str] | None) -> dict[int, str] | None:
        if v is None:
            return v
        if len(v) < 2:
            raise ValueError(f"needs at least 2 levels, got {len(v)}")
        levels = sorted(v)
        if levels != list(range(levels[0], levels[0] + len(levels))):
            raise ValueError(f"levels must be consecutive integers, got {levels}")
        if levels[0] < 0 or levels[-1] > 100:
            raise ValueError(f"levels must lie in [0, 100], got {levels[0]}..{levels[-1]}")
        for level, text in v.items():
            if not str(text).strip():
                raise ValueError(f"level {level} needs a description")
        return dict(sorted(v.items()))

    @property
    def min_score(self) -> int:
        """Lowest level of the scale."""
        assert self.scale is not None
        return min(self.scale)

    @property
    def max_score(self) -> int:
        """Highest level of the scale."""
        assert self.scale is not None
        return max(self.scale)


class FewShotExample(_Strict):
    """A worked example shown to the judge before the item."""

    prompt: str = Field(description="The user prompt of the example.")
    response: str | None = Field(default=None, description="The judged response (pointwise / reference).")
    response_a: str | None = Field(default=None, description="First response (pairwise).")
    response_b: str | None = Field(default=None, description="Second response (pairwise).")
    reference: str | None = Field(default=None, description="Reference answer (reference mode).")
    scores: dict[str, int] | None = Field(default=None, description="Expected score per criterion.")
    winner: Literal["A", "B", "tie"] | None = Field(default=None, description="Expected verdict (pairwise).")
    rationale: str | None = Field(default=None, description="Optional explanation of the expected verdict.")


class Rubric(_Strict):
    """A versioned, hashable description of how to judge."""

    id: str = Field(description="Stable identifier, used to load the rubric by name.")
    version: int = Field(ge=1, description="Bump whenever the wording changes in a way that can move scores.")
    description: str = Field(min_length=1, description="What this rubric measures, in one or two sentences.")
    mode: Mode = Field(
        description="pointwise: score one response; pairwise: choose between two; "
        "reference: score one response against a reference answer."
    )
    criteria: list[Criterion] = Field(min_length=1, description="What the judge assesses.")
    instructions: str | None = Field(default=None, description="Extra guidance appended to the judge's instructions.")
    allow_tie: bool = Field(default=True, description="Pairwise only: whether the judge may answer 'tie'.")
    rationale: bool = Field(
        default=False,
        description="Ask the judge for a short rationale before its verdict (stored with the judgment).",
    )
    examples: list[FewShotExample] = Field(default_factory=list, description="Few-shot examples.")
    principles: list[str] = Field(
        default_factory=list,
        description="Ids of the model spec's principles (constitution clauses) the rubric as a whole checks.",
    )

    @field_validator("id")
    @classmethod
    def _id_is_slug(cls, v: str) -> str:
        if not re.match(r"^[a-z][a-z0-9_\-]{0,63}$", v):
            raise ValueError("must be a lowercase slug: a letter, then letters, digits, '-' or '_'")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "Rubric":
        names = [c.name for c in self.criteria]
        for i, name in enumerate(names):
            first = names.index(name)
            if first != i:  # point at the repeat, so the error's line is the one to fix
                raise ValueError(
                    f"@criteria.{i}.name: criterion names must be unique; {name!r} is already used by criteria.{first}"
                )
        for i, c in enumerate(self.criteria):
            if self.mode != "pairwise" and c.scale is None:
                raise ValueError(f"@criteria.{i}: scale is required in {self.mode} mode (criterion {c.name!r})")
            if self.mode == "pairwise" and c.scale is not None:
                # The prompt would show score levels to a judge that is asked only for a winner.
                raise ValueError(
                    f"@criteria.{i}.scale: pairwise criteria have no scale, the verdict is a winner "
                    f"(criterion {c.name!r}); remove the scale or use mode pointwise"
                )
        unused = {
            "pointwise": ("response_a", "response_b", "reference", "winner"),
            "pairwise": ("response", "reference", "scores"),
            "reference": ("response_a", "response_b", "winner"),
        }[self.mode]
        for i, ex in enumerate(self.examples):
            where = f"examples.{i}"
            if self.mode == "pairwise":
                if ex.response_a is None or ex.response_b is None or ex.winner is None:
                    raise ValueError(f"@{where}: a pairwise example needs response_a, response_b and winner")
                if ex.winner == "tie" and not self.allow_tie:
                    raise ValueError(f"@{where}.winner: 'tie' is not allowed when the rubric sets allow_tie: false")
            else:
                if ex.response is None or ex.scores is None:
                    raise ValueError(f"@{where}: a {self.mode} example needs response and scores")
                if self.mode == "reference" and ex.reference is None:
                    raise ValueError(f"@{where}: a reference example needs a reference")
                for c in self.criteria:
                    if c.name not in ex.scores:
                        raise ValueError(f"@{where}.scores: missing criterion {c.name!r}")
                    s = ex.scores[c.name]
                    if c.scale is not None and s not in c.scale:
                        raise ValueError(
                            f"@{where}.scores.{c.name}: must be in {c.min_score}..{c.max_score} (given: {s})"
                        )
                extra = set(ex.scores) - set(names)
                if extra:
                    raise ValueError(f"@{where}.scores: unknown criteria {sorted(extra)}; allowed: {names}")
            for f in unused:
                if getattr(ex, f) is not None:  # silently dropped from the prompt otherwise
                    raise ValueError(f"@{where}.{f}: not used by a {self.mode} rubric")
            if self.rationale and not ex.rationale:
                # The example answer would teach the judge an empty rationale.
                raise ValueError(f"@{where}.rationale: required when the rubric sets rationale: true")
        return self

    @cached_property
    def content_hash(self) -> str:
        """SHA-256 of the rubric's canonical JSON: changes whenever any field changes."""
        data = self.model_dump(mode="json")
        for c in data["criteria"]:
            if not c["principles"]:  # added after hashes were recorded: a rubric without them keeps its hash
                del c["principles"]
        canonical = json.dumps(data, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> "Rubric":
        """A copy with ``update`` applied; its content hash is computed afresh."""
        copy = super().model_copy(update=update, deep=deep)
        copy.__dict__.pop("content_hash", None)  # the cached hash describes the original
        return copy

    @property
    def ref(self) -> str:
        """``id@version#hash12``, the short form used in logs and tables."""
        return f"{self.id}@{self.version}#{self.content_hash[:12]}"

    def overall(self, scores: dict[str, int]) -> float:
        """Weighted mean of criterion scores, each normalised to [0, 1]."""
        total = sum(c.weight for c in self.criteria)
        acc = 0.0
        for c in self.criteria:
            acc += c.weight * (scores[c.name] - c.min_score) / (c.max_score - c.min_score)
        return acc / total


def load_rubric(path: str | Path) -> Rubric:
    """Load and validate one rubric file.

    Raises:
        RubricError: naming the file, line, column, field, allowed values and the value given.
    """
    return load_model(Path(path), Rubric, RubricError, "rubric")


def list_rubrics(directory: Path = RUBRIC_DIR) -> list[Path]:
    """The rubric files of a library directory, sorted by name."""
    return sorted(p for p in Path(directory).glob("*.yaml"))


def resolve_rubric(ref: str | Path, directory: Path = RUBRIC_DIR) -> Rubric:
    """Load a rubric by library id (``helpfulness``) or by path (``my/rubric.yaml``)."""
    p = Path(ref)
    if p.suffix in (".yaml", ".yml") or p.is_file():  # a directory named like a rubric id is not one
        return load_rubric(p)
    for candidate in list_rubrics(directory):
        if candidate.stem == str(ref):
            rubric = load_rubric(candidate)
            if rubric.id != candidate.stem:
                raise RubricError(f"{candidate}: id {rubric.id!r} does not match the file name {candidate.stem!r}")
            return rubric
    known = ", ".join(p.stem for p in list_rubrics(directory)) or "(none)"
    raise RubricError(f"unknown rubric {str(ref)!r}: not a file, and not in the library {directory} (known: {known})")
