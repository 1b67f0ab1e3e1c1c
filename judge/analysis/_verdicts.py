"""Pair verdicts: the judgments of one pair in each order, combined into one verdict by a policy.

A pairwise item is judged as (A, B) and (B, A) (``pairwise_orders: both``). Every order's judgment
is reported in the item's own terms, so the two can be compared directly. A :class:`PairVerdict`
keeps both raw verdicts and the probability that the item's response A wins in each order, their
mean, whether the orders agree, and the final verdict under the job's policy:

- ``strict``: the winner only when both orders name it. A against B is ``inconsistent``; a win in
  one order against a tie in the other is a ``tie``.
- ``average-probability``: P(A wins) averaged over the orders (a tie counts half); within
  ``tie_threshold`` of 0.5 it is a ``tie``.

Neither policy ever picks silently: an order that could not be scored makes the pair ``unscored``
with the reason. Verdicts are written beside the judgments as ``<stem>.verdicts.jsonl`` (temp file
+ rename) when the job ends (:mod:`judge.runner._finish`), and summarised with the bias diagnostics of
:mod:`judge.analysis._bias`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Literal

from judge.core._records import Judgment, PairVerdict, stable_hash

__all__ = [
    "PairVerdict",
    "combine_orders",
    "pair_key",
    "pair_verdicts",
    "read_judgments",
    "read_pair_verdicts",
    "summary_lines",
    "verdicts_path",
]

Policy = Literal["strict", "average-probability"]
Order = Literal["AB", "BA"]


def verdicts_path(output: str | Path) -> Path:
    """Where a job's pair verdicts are written: ``<stem>.verdicts.jsonl`` beside its output."""
    p = Path(output)
    stem = p.name[: -len(p.suffix)] if p.suffix else p.name
    return p.with_name(stem + ".verdicts.jsonl")


def read_judgments(path: str | Path) -> list[Judgment]:
    """Every judgment of a judgments file, in file order."""
    with Path(path).open("r", encoding="utf-8") as fh:
        return [Judgment.model_validate_json(line) for line in fh if line.strip()]


def read_pair_verdicts(path: str | Path) -> list[PairVerdict]:
    """Every pair verdict of a verdicts file."""
    with Path(path).open("r", encoding="utf-8") as fh:
        return [PairVerdict.model_validate_json(line) for line in fh if line.strip()]


def _decide(p: float, threshold: float) -> Literal["A", "B", "tie"]:
    if abs(p - 0.5) <= threshold:
        return "tie"
    return "A" if p > 0.5 else "B"


def combine_orders(
    judgments: list[Judgment], policy: Policy = "strict", tie_threshold: float = 0.05, order_seed: int = 0
) -> PairVerdict:
    """One pair's verdict from its judgments (one per order, item terms, same judge and rubric).

    Raises:
        ValueError: the judgments are not pairwise, mix items, or repeat an order.
    """
    if not judgments:
        raise ValueError("combine_orders needs at least one judgment")
    first = judgments[0]
    by_order: dict[str, Judgment] = {}
    for j in judgments:
        if j.kind != "pairwise" or j.order is None:
            raise ValueError(f"judgment {j.key} is not a pairwise judgment with an order")
        if j.item_id != first.item_id or j.rubric.hash != first.rubric.hash:
            raise ValueError(f"judgments of different pairs: {first.item_id!r} and {j.item_id!r}")
        if j.order in by_order:
            raise ValueError(f"order {j.order} given twice for item {j.item_id!r}")
        by_order[j.order] = j
    orders = [j.order for j in judgments]
    verdicts = {o: (j.winner if j.status == "scored" else None) for o, j in by_order.items()}
    p_a: dict[str, float | None] = {}
    sources = set()
    for o, j in by_order.items():
        if j.status == "scored" and isinstance(j.extra.get("p_a"), (int, float)):
            p_a[o] = float(j.extra["p_a"])
            sources.add("verdicts" if j.extra.get("p_source") == "verdict" else "logprobs")
        else:
            p_a[o] = None
    base = dict(
        item_id=first.item_id,
        rubric=first.rubric,
        judge=first.judge,
        policy=policy,
        tie_threshold=tie_threshold if policy == "average-probability" else None,
        order_seed=order_seed,
        orders=orders,
        verdicts=verdicts,
        p_a=p_a,
        raw_outputs={o: j.raw_output for o, j in by_order.items()},
        judgment_keys={o: j.key for o, j in by_order.items()},
    )
    failed = [o for o in orders if by_order[o].status != "scored"]
    scored_p = [p for p in p_a.values() if p is not None]
    p_mean = round(sum(scored_p) / len(scored_p), 6) if scored_p else None
    source = ("verdicts" if sources == {"verdicts"} else "logprobs") if sources else None
    if failed:
        reasons = "; ".join(f"order {o}: {by_order[o].error}" for o in failed)
        return PairVerdict(status="unscored", error=reasons, p_a_mean=p_mean, p_source=source, **base)
    decided = [verdicts[o] for o in orders]
    consistent = (decided[0] == decided[1]) if len(decided) == 2 else None
    if policy == "strict":
        if len(decided) == 1 or decided[0] == decided[1]:
            winner: str = decided[0]  # type: ignore[assignment]
        elif "tie" in decided:
            winner = "tie"
        else:
            winner = "inconsistent"
    elif policy == "average-probability":
        if p_mean is None or len(scored_p) != len(orders):
            return PairVerdict(
                status="unscored",
                error="average-probability needs P(A wins) in every order",
                p_a_mean=p_mean,
                p_source=source,
                consistent=consistent,
                **base,
            )
        winner = _decide(p_mean, tie_threshold)
    else:
        raise ValueError(f"policy must be 'strict' or 'average-probability', got {policy!r}")
    return PairVerdict(
        status="scored",
        winner=winner,  # type: ignore[arg-type]
        p_a_mean=p_mean,
        p_source=source,
        consistent=consistent,
        **base,
    )


def pair_key(j: Judgment) -> str:
    """Which pair verdict a pairwise judgment belongs to: its pair, rubric, judge and decoding settings."""
    return stable_hash([j.item_id, j.rubric.hash, j.judge.model_hash, j.sampling.model_dump(mode="json")])


def pair_verdicts(
    judgments: Iterable[Judgment], policy: Policy = "strict", tie_threshold: float = 0.05, order_seed: int = 0
) -> list[PairVerdict]:
    """Group pairwise judgments by pair, judge, rubric and decoding settings, and combine each group.

    When a judgments file holds the same order twice for a group (a reopened job), the later one
    counts. Groups come out in the order their first judgment appears.
    """
    groups: dict[str, dict[str, Judgment]] = {}
    for j in judgments:
        if j.kind != "pairwise" or j.order is None:
            continue
        groups.setdefault(pair_key(j), {})[j.order] = j
    out = []
    for group in groups.values():
        ordered = sorted(group.values(), key=lambda j: 0 if j.order == "AB" else 1)
        out.append(combine_orders(ordered, policy, tie_threshold, order_seed))
    return out


def _fmt(x: Any, pct: bool = False) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float) and x != x:
        return "n/a"
    return f"{100 * x:.1f}%" if pct else f"{x:.3f}"


def summary_lines(entry: dict[str, Any]) -> list[str]:
    """Readable lines for one rubric's verdict and bias statistics (used by the job summary table)."""
    lines = []
    if entry.get("expected"):
        lines.append(
            "    expected (logprob-weighted): "
            + ", ".join(f"{c} {s['mean']:.2f}" for c, s in entry["expected"].items())
        )
    pairs = entry.get("pairs")
    if pairs:
        w = pairs["winners"]
        band = f", tie band {pairs['tie_threshold']}" if pairs.get("tie_threshold") is not None else ""
        lines.append(
            f"    pairs {pairs['n']} ({pairs['policy']}{band}): "
            + ", ".join(f"{k} {v}" for k, v in sorted(w.items()))
        )
    bias = entry.get("bias") or {}
    pos = bias.get("position")
    if pos and pos.get("n_verdicts"):
        lines.append(
            f"    position: first shown wins {_fmt(pos.get('first_shown_win_rate'), True)} of "
            f"{pos['n_verdicts']} decisive verdicts; P(first shown) {_fmt(pos.get('mean_p_first_shown'))}; "
            f"swap-inconsistent {_fmt(pos.get('swap_inconsistency_rate'), True)} of {pos.get('n_pairs_both_orders', 0)} pairs"
        )
    length = bias.get("length")
    if length:
        if length.get("n_pairs"):
            lines.append(
                f"    length: longer response wins {_fmt(length.get('longer_win_rate'), True)} of "
                f"{length['n_pairs']} decided pairs of unequal length"
            )
        if length.get("n_scores"):
            lines.append(
                f"    length: Spearman(score, length) {_fmt(length.get('score_length_spearman'))} "
                f"over {length['n_scores']} scores"
            )
    selfp = bias.get("self_preference")
    if selfp and selfp.get("n"):
        if "own_win_rate" in selfp:
            lines.append(
                f"    self-preference: the judge's own responses win {_fmt(selfp['own_win_rate'], True)} "
                f"of {selfp['n']} pairs against another model's"
            )
        else:
            lines.append(
                f"    self-preference: mean overall {_fmt(selfp.get('own_mean'))} on its own responses vs "
                f"{_fmt(selfp.get('other_mean'))} on others' ({selfp['n']} own)"
            )
    return lines


def dumps_verdicts(verdicts: list[PairVerdict]) -> str:
    """JSON lines of ``verdicts`` (for tools that print them)."""
    return "".join(json.dumps(v.model_dump(mode="json")) + "\n" for v in verdicts)
