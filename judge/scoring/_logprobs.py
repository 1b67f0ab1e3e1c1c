"""Reading a verdict from the logprobs of the tokens where its values start (G-Eval style).

The top logprobs at a verdict token give the distribution over the rubric's values: the expected
score, its entropy and margin (confidence), or for pairs the probability that each response wins.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from judge.backends._base import TokenLogprob
from judge.inputs._rubric import Rubric
from judge.scoring._plan import verdict_values

__all__ = ["VerdictReading", "read_logprobs", "value_starts"]


def value_starts(text: str) -> dict[str, int]:
    """Offsets where each top-level key's value starts in a (possibly unfinished) JSON object.

    A structural scan that tracks strings and escapes, so a key quoted inside the rationale string
    (``"... \\"helpfulness\\": 5 ..."``) is never taken for the real one.
    """
    out: dict[str, int] = {}
    n = len(text)
    i = text.find("{")
    if i < 0:
        return out
    i += 1

    def skip_ws(j: int) -> int:
        while j < n and text[j] in " \t\r\n":
            j += 1
        return j

    def skip_string(j: int) -> int:  # j at the opening quote; returns the index after the closing one
        j += 1
        while j < n:
            if text[j] == "\\":
                j += 2
                continue
            if text[j] == '"':
                return j + 1
            j += 1
        return n

    while i < n:
        i = skip_ws(i)
        if i >= n or text[i] != '"':
            break
        k_end = skip_string(i)
        try:
            key = json.loads(text[i:k_end])
        except json.JSONDecodeError:
            break
        i = skip_ws(k_end)
        if i >= n or text[i] != ":":
            break
        i = skip_ws(i + 1)
        if i >= n:
            break
        out.setdefault(key, i)
        depth = 0
        while i < n:  # skip the value
            ch = text[i]
            if ch == '"':
                i = skip_string(i)
                continue
            if ch in "{[":
                depth += 1
            elif ch in "}]":
                if depth == 0:
                    break
                depth -= 1
            elif ch == "," and depth == 0:
                break
            i += 1
        if i < n and text[i] == ",":
            i += 1
        else:
            break
    return out


@dataclass
class VerdictReading:
    """The distribution over one key's values at its verdict token."""

    distribution: dict[str, float]
    mass: float
    entropy: float
    margin: float

    @property
    def confidence(self) -> float:
        """1 - entropy / log(number of values): 1 is certain, 0 is uniform."""
        k = len(self.distribution)
        return 1.0 - self.entropy / math.log(k) if k > 1 else 1.0

    def expected(self) -> float:
        """Probability-weighted mean of numeric values."""
        return sum(int(v) * p for v, p in self.distribution.items())


def _match_value(rest: str, values: list[str]) -> str | None:
    """The value a candidate token's text (after the shared prefix) starts, if exactly one."""
    norm = rest.strip()
    if not norm:
        return None
    hits = []
    for v in values:
        lv, ln = v.lower(), norm.lower()
        if lv.startswith(ln) or (ln.startswith(lv) and not ln[len(lv):len(lv) + 1].isalnum()):
            hits.append(v)
    return hits[0] if len(hits) == 1 else None


def read_logprobs(
    rubric: Rubric, tokens: list[TokenLogprob], prefill: str | None = None
) -> tuple[dict[str, VerdictReading], str | None]:
    """Distributions over each answer key's values, read at the token where the value starts.

    Args:
        rubric: the rubric (its keys and their values).
        tokens: the generated tokens with their top-k alternatives.
        prefill: the answer prefix the tokens continue, if any. A backend that restarts the
            answer instead of continuing it is read without the prefix.

    Returns:
        ``(readings, error)``: one reading per key, or an error naming the first key that cannot be
        read (not generated, or none of its values among the top-k alternatives).
    """
    readings, error = _read(rubric, tokens, prefill or "")
    if error is not None and prefill:
        alone, alone_error = _read(rubric, tokens, "")
        if alone_error is None:
            return alone, None
    return readings, error


def _read(rubric: Rubric, tokens: list[TokenLogprob], base: str) -> tuple[dict[str, VerdictReading], str | None]:
    pieces = [t.token for t in tokens]
    text = base + "".join(pieces)
    starts = value_starts(text)
    bounds = []
    pos = len(base)
    for piece in pieces:
        bounds.append((pos, pos + len(piece)))
        pos += len(piece)
    readings: dict[str, VerdictReading] = {}
    for key, rendered in verdict_values(rubric):
        if key not in starts:
            return {}, f"no value for {key!r} among the generated tokens"
        quoted = rendered[0].startswith('"')
        sig = starts[key] + (1 if quoted else 0)
        idx = next((i for i, (a, b) in enumerate(bounds) if a <= sig < b), None)
        if idx is None:
            return {}, f"the value of {key!r} was not generated"
        prefix = text[bounds[idx][0] : sig]
        values = [v.strip('"') for v in rendered]
        probs: dict[str, float] = {}
        for cand, lp in tokens[idx].top.items():
            if not cand.startswith(prefix) and prefix.strip():
                continue
            rest = cand[len(prefix) :] if cand.startswith(prefix) else cand
            if quoted and '"' in rest:
                rest = rest.split('"')[0]
            v = _match_value(rest, values)
            if v is not None and lp > -math.inf:
                probs[v] = probs.get(v, 0.0) + math.exp(lp)
        mass = sum(probs.values())
        if mass <= 0.0:
            return {}, f"no value of {key!r} among the top-{len(tokens[idx].top)} logprobs"
        dist = {v: probs.get(v, 0.0) / mass for v in values}
        ranked = sorted(dist.values(), reverse=True)
        entropy = -sum(p * math.log(p) for p in dist.values() if p > 0)
        readings[key] = VerdictReading(
            distribution=dist,
            mass=min(mass, 1.0),
            entropy=entropy,
            margin=ranked[0] - (ranked[1] if len(ranked) > 1 else 0.0),
        )
    return readings, None
