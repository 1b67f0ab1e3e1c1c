"""Reading a written verdict: the JSON object a judge wrote, strict about the rubric.

A verdict that cannot be read is *unscored*: the raw text and the reason are kept and no number is
invented. Parsing is strict about the rubric (every criterion present, each value on its scale) and
lenient only about wrapping (code fences or prose around a single JSON object).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from judge.inputs._rubric import Rubric

__all__ = ["ParsedVerdict", "extract_json_object", "parse_verdict", "parse_with_prefill"]


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



def _closed(text: str) -> str:
    """``text`` with an unterminated string and object closed (a prefilled answer stops early)."""
    in_str, esc, depth = False, False, 0
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
    return text + ('"' if in_str else "") + "}" * max(depth, 0)


def parse_with_prefill(rubric: Rubric, prefill: str | None, text: str) -> ParsedVerdict:
    if prefill is None:
        return parse_verdict(rubric, text)
    verdict = parse_verdict(rubric, _closed(prefill + text))
    if not verdict.scored:
        alone = parse_verdict(rubric, text)  # a backend that restarted the answer instead of continuing
        if alone.scored:
            return alone
    return verdict

