"""The measures behind the per-round monitors, as plain functions of texts and numbers.

Each takes the policy's outputs on the fixed evaluation prompts (and, where it compares, round 0's
outputs or the human-written references) and returns one number. Texts are split into tokens by
:func:`tokens`: lowercased words (``\\w+``) and single punctuation marks, so the measures do not
depend on any model's tokenizer and need nothing downloaded.

- diversity: :func:`distinct_n` (unique / total n-grams over all outputs, Li et al. 2016),
  :func:`self_bleu` (each output's BLEU against the others, Zhu et al. 2018; sacrebleu), and
  :func:`compression_ratio` (bytes / gzip bytes of the outputs: higher is more repetitive);
- length: :func:`ks_statistic` and :func:`wasserstein` between two length samples;
- the tail: :func:`tail_coverage`, the share of the references' rare n-grams the policy produces;
- degeneration: :func:`repetition_rate` (outputs with a loop or a repeated line), :func:`refusal_rate`;
- KL to the reference policy: :func:`sequence_kl` from per-token log-probabilities, or
  :func:`kl_from_log_history` for a value TRL logged;
- reward hacking: :func:`judge_inflation`, the judge's gain that no human measure confirms.
"""

from __future__ import annotations

import gzip
import math
import re
from collections import Counter
from typing import Any, Iterable, Literal, Sequence

import numpy as np

from judge.core._errors import ConfigError, MissingDependencyError

__all__ = [
    "REFUSAL_PHRASES",
    "TRL_KL_KEYS",
    "compression_ratio",
    "distinct_n",
    "has_repeated_line",
    "has_repetition_loop",
    "judge_inflation",
    "kl_from_log_history",
    "ks_statistic",
    "ngrams",
    "refusal_rate",
    "repetition_rate",
    "self_bleu",
    "sequence_kl",
    "tail_coverage",
    "tokens",
    "wasserstein",
]

_TOKEN = re.compile(r"\w+|[^\w\s]")

#: Phrases that mark a refusal (matched lowercased, anywhere in the output, with ’ read as ').
REFUSAL_PHRASES: tuple[str, ...] = (
    "i can't help with",
    "i cannot help with",
    "i can't assist",
    "i cannot assist",
    "i can't provide",
    "i cannot provide",
    "i can't do that",
    "i cannot do that",
    "i can't comply",
    "i cannot comply",
    "i won't be able to",
    "i will not be able to",
    "i'm unable to",
    "i am unable to",
    "i'm not able to",
    "i am not able to",
    "i must decline",
    "i'm sorry, but i can",
    "i am sorry, but i can",
    "as an ai language model",
    "as an ai, i can",
)


def tokens(text: str) -> list[str]:
    """Lowercased words and punctuation marks of ``text``: the unit of every text measure here."""
    return _TOKEN.findall(text.lower())


def ngrams(toks: Sequence[str], n: int) -> list[tuple[str, ...]]:
    """The n-grams of a token list, in order (none when it is shorter than ``n``)."""
    return [tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)]


def _check_n(n: int) -> None:
    if n < 1:
        raise ConfigError(f"n must be at least 1, got {n}")


def distinct_n(outputs: Sequence[str], n: int) -> float:
    """Distinct n-grams over all outputs divided by all n-grams; 0.0 when there is no n-gram at all."""
    _check_n(n)
    grams = [g for text in outputs for g in ngrams(tokens(text), n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def self_bleu(outputs: Sequence[str], *, max_hypotheses: int | None = 100, seed: int = 0) -> float | None:
    """Mean sentence BLEU (in [0, 1]) of each output against all the other outputs as references.

    sacrebleu's BLEU with its default 13a tokenizer, exponential smoothing and effective order. The
    cost grows with the square of the outputs, so at most ``max_hypotheses`` outputs (a seeded draw)
    are scored, each against every other output. None with fewer than two non-empty outputs.
    """
    try:
        from sacrebleu.metrics import BLEU
    except ImportError:
        raise MissingDependencyError("self-BLEU needs sacrebleu: pip install 'judgeloop[train]' (or sacrebleu)") from None

    texts = [t for t in outputs if t.strip()]
    if len(texts) < 2:
        return None
    idx = np.arange(len(texts))
    if max_hypotheses is not None and len(texts) > max_hypotheses:
        idx = np.sort(np.random.default_rng(seed).choice(len(texts), size=max_hypotheses, replace=False))
    bleu = BLEU(effective_order=True)
    scores = [bleu.sentence_score(texts[i], texts[:i] + texts[i + 1 :]).score for i in idx]
    return min(1.0, float(np.mean(scores)) / 100.0)  # sacrebleu's float sum can exceed 100 by an ulp


def compression_ratio(outputs: Sequence[str]) -> float | None:
    """UTF-8 bytes of the outputs (joined by newlines) / bytes of their gzip; None when empty.

    Repetitive text compresses well, so the ratio rises as outputs collapse (Shaib et al. 2024).
    """
    raw = "\n".join(outputs).encode("utf-8")
    if not raw:
        return None
    return len(raw) / len(gzip.compress(raw, compresslevel=9, mtime=0))


def _ecdfs(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y = np.sort(np.asarray(a, dtype=float)), np.sort(np.asarray(b, dtype=float))
    if not len(x) or not len(y):
        raise ConfigError(f"length samples must be non-empty (got {len(x)} and {len(y)} values)")
    grid = np.union1d(x, y)
    return grid, np.searchsorted(x, grid, side="right") / len(x), np.searchsorted(y, grid, side="right") / len(y)


def ks_statistic(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs."""
    _, fa, fb = _ecdfs(a, b)
    return float(np.max(np.abs(fa - fb)))


def wasserstein(a: Sequence[float], b: Sequence[float]) -> float:
    """Wasserstein-1 distance between two samples: the area between their empirical CDFs."""
    grid, fa, fb = _ecdfs(a, b)
    return float(np.sum(np.abs(fa - fb)[:-1] * np.diff(grid)))


def tail_coverage(outputs: Sequence[str], references: Sequence[str], *, n: int = 1,
                  max_count: int = 1) -> tuple[float | None, int]:
    """Share of the references' rare n-grams that occur anywhere in the outputs.

    A reference n-gram is rare when it occurs at most ``max_count`` times over all references. A
    policy collapsing onto its most likely phrasing stops producing them first (Shumailov et al.
    2024). Returns (coverage, number of rare n-grams); coverage is None when there is none.
    """
    _check_n(n)
    if max_count < 1:
        raise ConfigError(f"max_count must be at least 1, got {max_count}")
    counts = Counter(g for text in references for g in ngrams(tokens(text), n))
    rare = {g for g, c in counts.items() if c <= max_count}
    if not rare:
        return None, 0
    produced = {g for text in outputs for g in ngrams(tokens(text), n)}
    return len(rare & produced) / len(rare), len(rare)


def has_repetition_loop(text: str, *, min_tokens: int = 6, max_period: int = 16) -> bool:
    """True when a span of 1..max_period tokens repeats back to back over at least ``min_tokens`` tokens.

    "the the the the the the" (period 1) and "a b c a b c" (period 3) are loops at the default 6;
    "thank you thank you" (4 tokens) is not.
    """
    toks = tokens(text)
    for period in range(1, max_period + 1):
        run = period  # tokens covered by the current run of this period
        for i in range(period, len(toks)):
            run = run + 1 if toks[i] == toks[i - period] else period
            if run >= min_tokens and run >= 2 * period:
                return True
    return False


def has_repeated_line(text: str, *, min_tokens: int = 2) -> bool:
    """True when a line of at least ``min_tokens`` tokens occurs more than once (compared stripped, lowercased)."""
    seen: set[str] = set()
    for line in text.splitlines():
        key = " ".join(tokens(line))
        if len(key.split()) < min_tokens:
            continue
        if key in seen:
            return True
        seen.add(key)
    return False


def repetition_rate(outputs: Sequence[str], *, min_tokens: int = 6, max_period: int = 16) -> float:
    """Share of outputs with a repetition loop or a repeated line (0.0 for no outputs)."""
    if not outputs:
        return 0.0
    hits = sum(has_repetition_loop(t, min_tokens=min_tokens, max_period=max_period) or has_repeated_line(t)
               for t in outputs)
    return hits / len(outputs)


def refusal_rate(outputs: Sequence[str], phrases: Iterable[str] = REFUSAL_PHRASES) -> float:
    """Share of outputs containing any of ``phrases`` (lowercased; curly apostrophes read as straight)."""
    if not outputs:
        return 0.0
    marks = [p.lower().replace("\u2019", "'") for p in phrases]
    hits = sum(any(m in t.lower().replace("\u2019", "'") for m in marks) for t in outputs)
    return hits / len(outputs)


def _rows(x: Any, mask: Any, what: str) -> list[np.ndarray]:
    if isinstance(x, np.ndarray) and x.ndim == 2:
        rows = [x[i] for i in range(x.shape[0])]
    else:
        rows = [np.asarray(r, dtype=float).reshape(-1) for r in x]
    if mask is not None:
        m = [np.asarray(r, dtype=bool).reshape(-1) for r in mask]
        if len(m) != len(rows) or any(len(a) != len(b) for a, b in zip(m, rows)):
            raise ConfigError(f"mask must have the shape of {what}")
        rows = [r[k] for r, k in zip(rows, m)]
    return [np.asarray(r, dtype=float) for r in rows]


def sequence_kl(policy_logprobs: Any, reference_logprobs: Any, mask: Any = None,
                estimator: Literal["k1", "k3"] = "k1") -> float:
    """Mean over sequences of the summed per-token KL estimate of KL(policy || reference).

    The sequences are samples of the policy; ``policy_logprobs[i][t]`` and ``reference_logprobs[i][t]``
    are the two models' log-probabilities of token ``t`` of sequence ``i`` (a 2-D array, with
    ``mask`` marking real tokens, or a list of 1-D arrays). ``k1`` sums ``log p - log q`` (TRL's
    online DPO ``objective/kl``); ``k3`` sums ``exp(r) - r - 1`` with ``r = log q - log p``, which is
    never negative (Schulman 2020; TRL's GRPO, which logs its per-token mean instead).
    """
    p = _rows(policy_logprobs, mask, "the log-probabilities")
    q = _rows(reference_logprobs, mask, "the log-probabilities")
    if len(p) != len(q) or not p:
        raise ConfigError(f"need the same non-zero number of sequences, got {len(p)} and {len(q)}")
    bad = [i for i, (a, b) in enumerate(zip(p, q)) if a.shape != b.shape]
    if bad:
        raise ConfigError(f"sequence {bad[0]}: {p[bad[0]].size} policy vs {q[bad[0]].size} reference log-probabilities")
    if estimator == "k1":
        per_seq = [float(np.sum(a - b)) for a, b in zip(p, q)]
    elif estimator == "k3":
        per_seq = [float(np.sum(np.exp(b - a) - (b - a) - 1.0)) for a, b in zip(p, q)]
    else:
        raise ConfigError(f"estimator must be 'k1' or 'k3', got {estimator!r}")
    value = float(np.mean(per_seq))
    if not math.isfinite(value):
        raise ConfigError("the log-probabilities give a non-finite KL (a -inf log-probability?)")
    return value


#: TRL log keys that hold a KL to the reference model, in the order looked for.
TRL_KL_KEYS: tuple[str, ...] = ("objective/kl", "kl")


def kl_from_log_history(log_history: Sequence[dict[str, Any]], key: str | None = None) -> tuple[float, str] | None:
    """The last KL a TRL trainer logged (``trainer.state.log_history`` or trainer_state.json's list).

    Returns (value, key) or None when no entry has it. Units follow the trainer: online DPO logs a
    sequence KL (``objective/kl``), GRPO and RLOO a per-token mean (``kl``).
    """
    keys = (key,) if key else TRL_KL_KEYS
    for entry in reversed(list(log_history)):
        for k in keys:
            v = entry.get(k)
            if isinstance(v, (int, float)) and math.isfinite(v):
                return float(v), k
    return None


def judge_inflation(judge: tuple[float, float], canary: tuple[float, float] | None = None,
                    audit: tuple[float, float] | None = None, *, tolerance: float = 0.01) -> tuple[float, bool]:
    """How much of the judge's gain no human measure confirms, and whether that is inflation.

    Each argument is (baseline, current): the judge's mean score of the policy, the judge's
    agreement on the canary set, the human audit's quality estimate, all on [0, 1] scales. The
    number is the judge's gain minus the largest human-measured gain (none below 0):
    ``(J1 - J0) - max(0, C1 - C0, A1 - A0)``. It is flagged when the judge rose by more than
    ``tolerance`` while neither the canary agreement nor the audit estimate did (a measure not
    given counts as not rising: nothing corroborates the gain).
    """
    gain = judge[1] - judge[0]
    human = [pair[1] - pair[0] for pair in (canary, audit) if pair is not None]
    confirmed = max([0.0, *human])
    flagged = gain > tolerance and all(h <= tolerance for h in human)
    return gain - confirmed, flagged
