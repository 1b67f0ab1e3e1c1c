"""Canaries: a frozen human-labelled anchor set re-scored by every judging run, to catch judge drift.

A canary set is a labelled set in the ``judgeloop eval`` format, named in a judge config as
``audit.canary: path``. :func:`canary_check` compares the eval report of the current run on it
with the last accepted report: a drop in agreement larger than chance is *flagged* and the gate
fails on it. The test is one-sided on the difference of the two accuracies, with its standard
error taken from the two reports' bootstrap 95% intervals (``se ≈ width / 3.92``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from judge.audit._stats import normal_quantile
from judge.core._errors import ConfigError

__all__ = ["CanaryCheck", "canary_check", "load_eval_report"]


class CanaryCheck(BaseModel):
    """The comparison of a run's canary agreement with the last accepted run's."""

    model_config = ConfigDict(extra="forbid")

    flagged: bool = Field(description="True when agreement dropped by more than its interval allows.")
    judge: str = Field(description="Which judge of the eval reports was compared.")
    metric: str = Field(description="The agreement statistic compared (eval report key).")
    current: float | None = Field(description="The current run's value.")
    accepted: float | None = Field(description="The last accepted run's value.")
    drop: float | None = Field(description="accepted - current.")
    z: float | None = Field(description="The drop in standard errors.")
    detail: str = Field(description="Readable statement of the comparison.")


def load_eval_report(path: str | Path) -> dict[str, Any]:
    """An eval report (``judgeloop eval --json`` output) from a file."""
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{p}: not a readable eval report ({exc})") from None


def _stat(report: dict[str, Any], judge: str, metric: str, where: str) -> tuple[float, list[float | None]]:
    try:
        s = report["judges"][judge][metric]
    except (KeyError, TypeError):
        have = sorted((report.get("judges") or {}))
        raise ConfigError(f"{where} eval report has no judges.{judge}.{metric} (judges: {have})") from None
    if s.get("value") is None:
        raise ConfigError(f"{where} eval report: judges.{judge}.{metric} is undefined")
    return float(s["value"]), list(s.get("ci95") or [None, None])


def canary_check(
    current: dict[str, Any], accepted: dict[str, Any], *, judge: str | None = None, metric: str = "accuracy",
    alpha: float = 0.05,
) -> CanaryCheck:
    """Flag a drop in canary agreement between the last accepted eval report and the current one.

    Raises:
        ConfigError: the reports are of different canary sets, or lack the statistic.
    """
    if current.get("data_sha256") and accepted.get("data_sha256") and current["data_sha256"] != accepted["data_sha256"]:
        raise ConfigError(
            f"canary reports are of different sets ({current.get('data')} sha {current['data_sha256'][:12]} vs "
            f"{accepted.get('data')} sha {accepted['data_sha256'][:12]}): a canary set is frozen; compare like with like"
        )
    names = sorted((current.get("judges") or {}))
    judge = judge or (names[0] if len(names) == 1 else ("jury" if "jury" in names else (names[0] if names else "")))
    cur, cur_ci = _stat(current, judge, metric, "current")
    acc, acc_ci = _stat(accepted, judge, metric, "accepted")

    def se(v: float, ci: list[float | None]) -> float:
        if ci[0] is None or ci[1] is None:
            return 0.0
        return max(0.0, (ci[1] - ci[0]) / (2 * normal_quantile(0.975)))

    s = math.sqrt(se(cur, cur_ci) ** 2 + se(acc, acc_ci) ** 2)
    drop = acc - cur
    z = drop / s if s > 0 else (math.inf if drop > 0 else 0.0)
    flagged = z > normal_quantile(1 - alpha)
    detail = (
        f"canary {metric} {cur:.3f} vs accepted {acc:.3f} (drop {drop:+.3f}, z {z:.2f})"
        + (": a drop beyond its interval, the judge drifted" if flagged else ": no significant drop")
    )
    return CanaryCheck(flagged=flagged, judge=judge, metric=metric, current=cur, accepted=acc, drop=round(drop, 6),
                       z=None if not math.isfinite(z) else round(z, 4), detail=detail)
