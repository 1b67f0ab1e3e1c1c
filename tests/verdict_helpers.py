"""Scripted completions with logprobs, for testing verdict reading and aggregation without a model."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import TypeVar

from judge.backends import Completion, TokenLogprob


def tok(token: str, top: dict[str, float] | None = None) -> TokenLogprob:
    """A generated token; ``top`` maps alternatives to *probabilities* (converted to logprobs)."""
    top = top or {token: 1.0}
    lps = {k: (math.log(p) if p > 0 else -math.inf) for k, p in top.items()}
    return TokenLogprob(token=token, logprob=lps.get(token, -math.inf), top=lps)


def completion(tokens: list[TokenLogprob], finish: str = "length") -> Completion:
    """A completion whose text is the concatenation of its tokens."""
    return Completion(
        text="".join(t.token for t in tokens),
        tokens=tokens,
        prompt_tokens=100,
        completion_tokens=len(tokens),
        finish_reason=finish,
    )


def first_token(top: dict[str, float]) -> Completion:
    """A one-token completion (logprob scoring after a prefill): the most likely alternative."""
    best = max(top, key=lambda k: top[k])
    return completion([tok(best, top)])


def pieces(text: str) -> list[str]:
    """Split a text into plausible tokens: digits, letters runs, and single punctuation/space."""
    out: list[str] = []
    for ch in text:
        if out and ch.isalpha() and out[-1].isalpha():
            out[-1] += ch
        else:
            out.append(ch)
    return out


def scores(*criteria: tuple[str, dict[str, float]]) -> Completion:
    """The continuation of a ``{"first": `` prefill for several criteria: one verdict token each,
    with its alternatives, and the JSON between them (``4, "second": 2}``)."""
    toks: list[TokenLogprob] = []
    for i, (key, top) in enumerate(criteria):
        if i:
            toks += [tok(p) for p in pieces(f', "{key}": ')]
        best = max(top, key=lambda k: top[k])
        toks.append(tok(best, top))
    if len(criteria) > 1:
        toks.append(tok("}"))
    return completion(toks)


K = TypeVar("K", bound=Hashable)


def swapped_winners(before: Mapping[K, str | None], after: Mapping[K, str | None]) -> list[K]:
    """Keys whose winner is A in one run and B in the other: the move numeric noise must never make."""
    return [k for k, w in before.items() if {w, after.get(k)} == {"A", "B"}]
