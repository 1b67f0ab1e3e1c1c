"""The model spec: the principles a good response follows, with stable ids the rubrics cite.

A spec is a YAML file (the shipped one is ``configs/spec.yaml``)::

    version: 1
    description: What a good response should and should not do.
    principles:
      - id: honesty.no-fabrication
        kind: should_not
        text: Invent facts, numbers, names, sources, quotes or actions it did not take.

A rubric cites principles by id, for the rubric as a whole (``principles:`` at its top level) or
per criterion (``principles:`` in a criterion). :func:`check_spec` lists the principles no rubric
covers and the citations that name no principle; ``judgeloop rubrics check --spec`` prints both.
:func:`principle_scores` breaks judgments down by principle.

Errors in a spec file raise :class:`SpecError` (a :class:`~judge.core.RubricError`), naming the
file, line, column and field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from judge.core._errors import RubricError
from judge.core._records import Judgment
from judge.core._yaml import load_model, load_yaml, node_at
from judge.inputs._rubric import Rubric

__all__ = [
    "Citation",
    "ModelSpec",
    "Principle",
    "PrincipleBreakdown",
    "PrincipleScore",
    "SpecCheck",
    "SpecError",
    "check_spec",
    "citations",
    "load_spec",
    "locate",
    "principle_scores",
]

_ID = re.compile(r"^[a-z][a-z0-9_\-]*(\.[a-z0-9][a-z0-9_\-]*)*$")


class SpecError(RubricError):
    """A model spec file is invalid; the message names the file, line, field and value."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Principle(_Strict):
    """One clause of the spec."""

    id: str = Field(description="Stable id the rubrics cite: dotted lowercase words, e.g. honesty.no-fabrication.")
    kind: Literal["should", "should_not"] = Field(description="Whether a good response does this or avoids it.")
    text: str = Field(min_length=1, description="The principle, completing 'A response should ...' or '... should not ...'.")

    @field_validator("id")
    @classmethod
    def _id_is_dotted_slug(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError("must be dotted lowercase words: letters, digits, '-' or '_' between dots (honesty.no-fabrication)")
        return v

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v


class ModelSpec(_Strict):
    """A versioned list of principles with unique ids."""

    version: int = Field(default=1, ge=1, description="Bump when a principle's meaning changes.")
    description: str = Field(default="", description="What the spec is for.")
    principles: list[Principle] = Field(min_length=1, description="The principles, each with a unique id.")

    @model_validator(mode="after")
    def _unique_ids(self) -> "ModelSpec":
        ids = [p.id for p in self.principles]
        for i, pid in enumerate(ids):
            first = ids.index(pid)
            if first != i:  # point at the repeat, so the error's line is the one to fix
                raise ValueError(f"@principles.{i}.id: principle ids must be unique; {pid!r} is already principles.{first}")
        return self

    @property
    def ids(self) -> list[str]:
        """The principle ids, in file order."""
        return [p.id for p in self.principles]

    def get(self, pid: str) -> Principle | None:
        """The principle with this id, if any."""
        return next((p for p in self.principles if p.id == pid), None)


def load_spec(path: str | Path) -> ModelSpec:
    """Load and validate a spec file.

    Raises:
        SpecError: naming the file, line, column, field and the value given.
    """
    return load_model(Path(path), ModelSpec, SpecError, "model spec")


class Citation(_Strict):
    """One principle id cited by a rubric."""

    rubric: str = Field(description="The citing rubric's id.")
    field: str = Field(description="Where in the rubric: principles.<i> or criteria.<j>.principles.<i>.")
    criterion: str | None = Field(default=None, description="The citing criterion; None for the rubric as a whole.")
    principle: str = Field(description="The id cited.")


def citations(rubric: Rubric) -> list[Citation]:
    """Every principle id a rubric cites, the rubric's own first, then each criterion's."""
    out = [Citation(rubric=rubric.id, field=f"principles.{i}", principle=p) for i, p in enumerate(rubric.principles)]
    for j, c in enumerate(rubric.criteria):
        out += [Citation(rubric=rubric.id, field=f"criteria.{j}.principles.{i}", criterion=c.name, principle=p)
                for i, p in enumerate(c.principles)]
    return out


class SpecCheck(_Strict):
    """How a set of rubrics answers to a spec."""

    principles: int = Field(description="Principles in the spec.")
    rubrics: list[str] = Field(description="The rubrics checked (ids).")
    uncovered: list[Principle] = Field(description="Principles no checked rubric cites.")
    dangling: list[Citation] = Field(description="Citations that name no principle of the spec.")
    coverage: dict[str, list[str]] = Field(description="Principle id -> the rubrics citing it.")

    @property
    def ok(self) -> bool:
        """Every principle is covered and every citation names one."""
        return not self.uncovered and not self.dangling


def check_spec(spec: ModelSpec, rubrics: Iterable[Rubric]) -> SpecCheck:
    """The principles of ``spec`` that no rubric cites, and the citations that point nowhere."""
    rubrics = list(rubrics)
    known = set(spec.ids)
    coverage: dict[str, list[str]] = {pid: [] for pid in spec.ids}
    dangling: list[Citation] = []
    for r in rubrics:
        for c in citations(r):
            if c.principle in known:
                if r.id not in coverage[c.principle]:
                    coverage[c.principle].append(r.id)
            else:
                dangling.append(c)
    return SpecCheck(
        principles=len(spec.principles),
        rubrics=[r.id for r in rubrics],
        uncovered=[p for p in spec.principles if not coverage[p.id]],
        dangling=dangling,
        coverage=coverage,
    )


def locate(path: str | Path, field: str) -> str:
    """``path:line:col`` of a dotted field (``criteria.0.principles.1``) in a YAML file; the path alone if unknown."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        _, node = load_yaml(text, str(path), RubricError)
    except (OSError, RubricError):
        return str(path)
    target = node_at(node, tuple(int(p) if p.isdigit() else p for p in field.split(".")))
    return f"{path}:{target.start_mark.line + 1}:{target.start_mark.column + 1}" if target is not None else str(path)


# ----------------------------------------------------------------------------------------------
# Scores per principle


class PrincipleScore(_Strict):
    """The mean normalised score (0..1) of one principle over the judgments that bear on it."""

    principle: str = Field(description="The principle id.")
    mean: float | None = Field(description="Mean over judgments of the principle's score; None without any.")
    n: int = Field(description="Judgments that contributed.")
    rubrics: list[str] = Field(description="The rubrics they came from.")


class PrincipleBreakdown(_Strict):
    """Per principle, the mean score; and the judgments that could not contribute, by reason."""

    scores: dict[str, PrincipleScore] = Field(description="Principle id -> its score.")
    skipped: dict[str, int] = Field(
        description="unscored, pairwise (a winner has no per-criterion score), unknown_rubric, no_principles."
    )


def _principle_values(rubric: Rubric, scores: dict[str, int]) -> dict[str, float]:
    """Each cited principle's score on one judgment.

    The most specific citation wins: a principle cited by criteria gets the mean normalised score of
    those criteria; one cited only by the rubric as a whole gets the weighted overall score.
    """
    by_criterion: dict[str, list[float]] = {}
    for c in rubric.criteria:
        if c.name not in scores or c.scale is None:
            continue
        value = (scores[c.name] - c.min_score) / (c.max_score - c.min_score)
        for pid in dict.fromkeys(c.principles):
            by_criterion.setdefault(pid, []).append(value)
    out = {pid: sum(v) / len(v) for pid, v in by_criterion.items()}
    if rubric.principles and all(c.name in scores for c in rubric.criteria):
        overall = rubric.overall(scores)
        for pid in rubric.principles:
            out.setdefault(pid, overall)
    return out


def principle_scores(judgments: Iterable[Judgment], rubrics: Sequence[Rubric],
                     spec: ModelSpec | None = None) -> PrincipleBreakdown:
    """Mean score per principle over pointwise and reference judgments.

    Args:
        judgments: the judgments; each is matched to its rubric by content hash.
        rubrics: the rubrics the judgments were made with.
        spec: when given, exactly its principles are reported (those without judgments with
            ``mean`` None), and citations it does not know are left out.
    """
    by_hash = {r.content_hash: r for r in rubrics}
    values: dict[str, list[float]] = {pid: [] for pid in (spec.ids if spec else [])}
    sources: dict[str, list[str]] = {pid: [] for pid in values}
    skipped = {"unscored": 0, "pairwise": 0, "unknown_rubric": 0, "no_principles": 0}
    for j in judgments:
        if j.status != "scored":
            skipped["unscored"] += 1
            continue
        if j.kind == "pairwise" or j.scores is None:
            skipped["pairwise"] += 1
            continue
        rubric = by_hash.get(j.rubric.hash)
        if rubric is None:
            skipped["unknown_rubric"] += 1
            continue
        found = {pid: v for pid, v in _principle_values(rubric, j.scores).items() if spec is None or pid in values}
        if not found:
            skipped["no_principles"] += 1
        for pid, v in found.items():
            values.setdefault(pid, []).append(v)
            src = sources.setdefault(pid, [])
            if rubric.id not in src:
                src.append(rubric.id)
    scores = {
        pid: PrincipleScore(principle=pid, mean=sum(v) / len(v) if v else None, n=len(v), rubrics=sources[pid])
        for pid, v in values.items()
    }
    return PrincipleBreakdown(scores=scores, skipped=skipped)
