"""A round's evaluation: the new policy against the previous one, judged pairwise in both orders.

Each policy answers the held-out prompts greedily; every prompt becomes a pair (response_a: the new
policy's answer, response_b: the previous one's), judged in both orders so that position bias
cancels. The win rate counts a win as 1, a tie or a swap-inconsistent verdict as 1/2 (the judge
could not tell), and leaves unscored pairs out (counted); its interval is a percentile bootstrap
over prompts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from judge.core._io import atomic_write

__all__ = ["WinRate", "eval_pairs", "win_rate"]


class WinRate(BaseModel):
    """The new policy's win rate over the previous one."""

    model_config = ConfigDict(extra="forbid")

    round: int
    new_policy: str
    old_policy: str
    rubric: str
    pairs: int = Field(description="Prompts judged in both orders with a verdict.")
    wins: int
    losses: int
    ties: int
    inconsistent: int = Field(description="The two orders disagreed (counted as ties).")
    unscored: int = Field(description="Pairs without a verdict (left out).")
    win_rate: float | None = Field(description="(wins + (ties + inconsistent) / 2) / pairs.")
    ci: tuple[float, float] | None = Field(description="95% percentile bootstrap interval over prompts.")
    judgments: str = Field(description="The evaluation's judgments file.")


def _answers(path: Path) -> dict[str, dict[str, Any]]:
    out = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rec = json.loads(line)
                if rec.get("status", "generated") != "failed" and rec.get("response") is not None:
                    out[str(rec["prompt_id"])] = rec
    return out


def eval_pairs(new_answers: Path, old_answers: Path, out: Path) -> int:
    """Write the pairwise items (new as A, previous as B) for every prompt both answered; return how many."""
    new, old = _answers(new_answers), _answers(old_answers)
    lines = []
    for pid in sorted(set(new) & set(old)):
        a, b = new[pid], old[pid]
        lines.append(json.dumps({
            "id": f"eval-{pid}", "prompt": a["prompt"], "system": a.get("system"), "response_a": a["response"],
            "response_b": b["response"], "prompt_id": pid, "new_candidate": a["id"], "old_candidate": b["id"],
        }, ensure_ascii=False) + "\n")
    atomic_write(out, lines)
    return len(lines)


def win_rate(judgments_file: Path, round_no: int, new_policy: str, old_policy: str, rubric: str,
             reps: int = 1000, seed: int = 0) -> WinRate:
    """The win rate of response A (the new policy) from a pairwise judgments file."""
    from judge.analysis._metrics import bootstrap_ci
    from judge.analysis._verdicts import pair_verdicts, read_judgments

    verdicts = pair_verdicts(read_judgments(judgments_file), "strict")
    vals, unscored, inconsistent, ties, wins, losses = [], 0, 0, 0, 0, 0
    for v in verdicts:
        if v.status != "scored" or v.winner is None:
            unscored += 1
            continue
        if v.winner == "A":
            wins += 1
            vals.append(1.0)
        elif v.winner == "B":
            losses += 1
            vals.append(0.0)
        else:
            inconsistent += v.winner == "inconsistent"
            ties += v.winner == "tie"
            vals.append(0.5)
    arr = np.array(vals)
    rate = float(arr.mean()) if len(arr) else None
    ci = None
    if len(arr) >= 2:
        b = bootstrap_ci(lambda idx: float(arr[idx].mean()), len(arr), reps=reps, seed=seed)
        ci = (round(float(b.low), 4), round(float(b.high), 4))
    return WinRate(round=round_no, new_policy=new_policy, old_policy=old_policy, rubric=rubric, pairs=len(arr),
                   wins=wins, losses=losses, ties=ties, inconsistent=inconsistent, unscored=unscored,
                   win_rate=None if rate is None else round(rate, 4), ci=ci, judgments=str(judgments_file))
