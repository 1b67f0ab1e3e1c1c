"""Behavioural drift probes: a fixed set of questions whose good answers should not change.

Every round the new policy answers the probes greedily and the loop's judge scores the answers;
each probe's score is compared with the previous policy's (round 0: the starting policy's), and
the biggest movers are listed. A factual answer that gets worse, a refusal that disappears, a
format that stops being followed: each shows up as a probe that moved.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["probe_changes"]


def _scores(judgments: Path) -> dict[str, float | None]:
    """Per item id, the mean overall score (in [0, 1]) over the rubrics; None when unscored."""
    per: dict[str, list[float | None]] = {}
    if judgments.is_file():
        for line in judgments.read_text(encoding="utf-8").splitlines():
            if line.strip():
                j = json.loads(line)
                per.setdefault(j["item_id"], []).append(j.get("overall") if j.get("status") == "scored" else None)
    out = {}
    for iid, vs in per.items():
        ok = [v for v in vs if v is not None]
        out[iid] = sum(ok) / len(ok) if ok and len(ok) == len(vs) else None
    return out


def _by_prompt(answers: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for line in answers.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            out[str(rec["prompt_id"])] = rec
    return out


def probe_changes(new_answers: Path, new_judgments: Path, old_answers: Path, old_judgments: Path,
                  top: int = 5) -> dict[str, Any]:
    """Per probe: the previous and the new policy's answer and score, the change, and the biggest movers."""
    new_a, old_a = _by_prompt(new_answers), _by_prompt(old_answers)
    new_s, old_s = _scores(new_judgments), _scores(old_judgments)
    probes = []
    for pid in sorted(new_a):
        na, oa = new_a[pid], old_a.get(pid)
        ns, os_ = new_s.get(na["id"]), (old_s.get(oa["id"]) if oa else None)
        change = round(ns - os_, 6) if ns is not None and os_ is not None else None
        probes.append({"probe": pid, "prompt": na["prompt"], "new_answer": na.get("response"),
                       "old_answer": oa.get("response") if oa else None, "new_score": ns, "old_score": os_,
                       "change": change, "meta": na.get("prompt_meta") or {}})
    moved = sorted((p for p in probes if p["change"] is not None), key=lambda p: -abs(p["change"]))
    changes = [p["change"] for p in probes if p["change"] is not None]
    return {"probes": probes, "biggest_movers": [p["probe"] for p in moved[:top]],
            "mean_change": round(sum(changes) / len(changes), 6) if changes else None,
            "unscored": sum(p["new_score"] is None for p in probes)}
