"""Alarms on the per-round monitors, and the human overrides that let a round past one.

A :class:`MonitorThresholds` (alias :data:`AlarmConfig`; the loop config's ``monitors:`` section)
sets an optional threshold per monitor. A plain number alarms in the monitor's natural direction
(``distinct_2: 0.3`` alarms when distinct-2 falls below 0.3, ``self_bleu: 0.8`` when self-BLEU
rises above 0.8); ``{below: x, above: y}`` sets either side explicitly, and is the only form for
the length ratio, which may drift either way::

    monitors:
      distinct_2: 0.30
      self_bleu: 0.80
      tail_coverage: 0.20
      mean_length_ratio: {below: 0.5, above: 2.0}
      judge_inflation: 0.05

:func:`check_alarms` lists every crossed threshold as an :class:`Alarm`. An alarm is overridden
only by a recorded :class:`MonitorOverride` (who, why, when, which monitor and round), kept in an
append-only JSONL file; an overridden alarm stays in the list. :func:`alarms_block` says why the
loop must stop, or None when nothing is left standing.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, Sequence

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from judge.core._errors import ConfigError
from rlaif._monitors import RoundMonitors, append_jsonl, read_jsonl

__all__ = [
    "MONITORS",
    "Alarm",
    "AlarmConfig",
    "Bound",
    "MonitorOverride",
    "MonitorThresholds",
    "alarms_block",
    "check_alarms",
    "read_monitor_overrides",
    "record_monitor_override",
]

Direction = Literal["below", "above"]

#: Every monitor an alarm can watch: its display name and natural direction (None: give both sides).
MONITORS: dict[str, tuple[str, Direction | None]] = {
    "distinct_1": ("distinct-1", "below"),
    "distinct_2": ("distinct-2", "below"),
    "distinct_3": ("distinct-3", "below"),
    "self_bleu": ("self-BLEU", "above"),
    "compression_ratio": ("compression ratio", "above"),
    "mean_length_ratio": ("mean length ratio to round 0", None),
    "length_ks": ("length KS statistic", "above"),
    "length_wasserstein": ("length Wasserstein distance", "above"),
    "tail_coverage": ("tail coverage", "below"),
    "repetition_rate": ("repetition rate", "above"),
    "refusal_rate": ("refusal rate", "above"),
    "kl": ("KL to the reference", "above"),
    "synthetic_share": ("synthetic share", "above"),
    "judge_inflation": ("judge-score inflation", "above"),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Bound(_Strict):
    """Alarm thresholds on one monitor: below ``below``, above ``above`` (either may be left out)."""

    below: float | None = Field(default=None, description="Alarm when the value is below this.")
    above: float | None = Field(default=None, description="Alarm when the value is above this.")

    @model_validator(mode="after")
    def _some_side(self) -> "Bound":
        if self.below is None and self.above is None:
            raise ValueError("give below, above or both")
        if self.below is not None and self.above is not None and self.below > self.above:
            raise ValueError(f"below ({self.below}) must not exceed above ({self.above})")
        return self


def _field(name: str) -> Any:
    label, direction = MONITORS[name]
    how = f"a number alarms {direction} it" if direction else "needs {below: x} and/or {above: y}"
    return Field(default=None, description=f"Threshold on {label}: {how}; or {{below, above}}.")


class MonitorThresholds(_Strict):
    """A threshold per monitor, each optional (the loop config's ``monitors:`` section)."""

    distinct_1: Bound | None = _field("distinct_1")
    distinct_2: Bound | None = _field("distinct_2")
    distinct_3: Bound | None = _field("distinct_3")
    self_bleu: Bound | None = _field("self_bleu")
    compression_ratio: Bound | None = _field("compression_ratio")
    mean_length_ratio: Bound | None = _field("mean_length_ratio")
    length_ks: Bound | None = _field("length_ks")
    length_wasserstein: Bound | None = _field("length_wasserstein")
    tail_coverage: Bound | None = _field("tail_coverage")
    repetition_rate: Bound | None = _field("repetition_rate")
    refusal_rate: Bound | None = _field("refusal_rate")
    kl: Bound | None = _field("kl")
    synthetic_share: Bound | None = _field("synthetic_share")
    judge_inflation: Bound | None = _field("judge_inflation")

    @field_validator(*MONITORS, mode="before")
    @classmethod
    def _number_is_natural_direction(cls, v: Any, info: pydantic.ValidationInfo) -> Any:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            direction = MONITORS[str(info.field_name)][1]
            if direction is None:
                raise ValueError(f"{info.field_name} may drift either way: give {{below: x}} and/or {{above: y}}")
            return {direction: v}
        return v

    @classmethod
    def from_mapping(cls, data: dict[str, Any] | None, source: str = "monitors") -> "MonitorThresholds":
        """Thresholds from a config section; errors name the section, the field and the value."""
        try:
            return cls.model_validate(data or {})
        except pydantic.ValidationError as exc:
            problems = []
            for e in exc.errors(include_url=False):
                field = ".".join(str(p) for p in e["loc"])
                msg = e["msg"].removeprefix("Value error, ")
                if e["type"] == "extra_forbidden":
                    msg = f"unknown monitor; allowed: {', '.join(MONITORS)}"
                problems.append(f"{source}.{field}: {msg} (given: {e.get('input')!r})")
            raise ConfigError("; ".join(problems)) from None


#: The same model under the name the loop config uses for it.
AlarmConfig = MonitorThresholds


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


class MonitorOverride(_Strict):
    """A person's recorded decision to let a round past one monitor's alarm. Kept, never edited."""

    schema_version: int = Field(default=1, description="Record format version.")
    reviewer: str = Field(min_length=1, description="Who overrode.")
    reason: str = Field(min_length=1, description="Why the round may proceed despite the alarm.")
    monitor: str = Field(description="The monitor whose alarm it lets pass (a MonitorThresholds field).")
    round: int = Field(ge=0, description="The round it applies to.")
    created_at: str = Field(default_factory=_now, description="When (UTC, ISO 8601).")

    @field_validator("reviewer", "reason")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank: an override names a person and a reason")
        return v

    @field_validator("monitor")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in MONITORS:
            raise ValueError(f"unknown monitor {v!r}; allowed: {', '.join(MONITORS)}")
        return v


class Alarm(_Strict):
    """One crossed threshold of one round."""

    monitor: str = Field(description="The monitor (a RoundMonitors field).")
    round: int = Field(description="The round measured.")
    value: float = Field(description="The monitor's value.")
    threshold: float = Field(description="The threshold it crossed.")
    direction: Direction = Field(description="below: the value fell under the threshold; above: it rose over it.")
    message: str = Field(description='E.g. "round 3: distinct-2 0.12 is below the alarm threshold 0.30".')
    overridden: bool = Field(default=False, description="A recorded override lets the round proceed.")
    overrides: list[MonitorOverride] = Field(default_factory=list, description="The overrides that apply.")


def _fmt(x: float) -> str:
    return f"{x:.2f}" if abs(x) >= 0.01 or x == 0 else f"{x:.3g}"


def check_alarms(monitors: RoundMonitors, thresholds: MonitorThresholds,
                 overrides: Sequence[MonitorOverride] = ()) -> list[Alarm]:
    """Every threshold the round crossed, in the order of :data:`MONITORS`.

    A monitor that was not measured (None) raises no alarm. An override for the same monitor and
    round marks its alarm overridden; the alarm stays listed.
    """
    alarms: list[Alarm] = []
    for name, (label, _) in MONITORS.items():
        bound: Bound | None = getattr(thresholds, name)
        value = getattr(monitors, name)
        if bound is None or value is None:
            continue
        crossed = [(d, t) for d, t in (("below", bound.below), ("above", bound.above))
                   if t is not None and (value < t if d == "below" else value > t)]
        for direction, threshold in crossed:
            hits = [o for o in overrides if o.monitor == name and o.round == monitors.round]
            alarms.append(Alarm(
                monitor=name, round=monitors.round, value=float(value), threshold=float(threshold),
                direction=direction,  # type: ignore[arg-type]
                message=f"round {monitors.round}: {label} {_fmt(value)} is {direction} the alarm threshold {_fmt(threshold)}",
                overridden=bool(hits), overrides=hits,
            ))
    return alarms


def alarms_block(alarms: Sequence[Alarm]) -> str | None:
    """Why the loop must stop: every alarm not overridden, and how to proceed; None when none is left."""
    standing = [a for a in alarms if not a.overridden]
    if not standing:
        return None
    lines = "; ".join(a.message for a in standing)
    which = ", ".join(f"{a.monitor} (round {a.round})" for a in standing)
    return (f"monitor alarm{'s' if len(standing) > 1 else ''}: {lines}. The loop stops before training; "
            f"to proceed, a person records an override (reviewer and reason) for {which}")


def record_monitor_override(path: str | Path, override: MonitorOverride) -> MonitorOverride:
    """Append an override to the overrides file (append + fsync); returns it."""
    append_jsonl(path, override)
    return override


def read_monitor_overrides(path: str | Path) -> list[MonitorOverride]:
    """Every override recorded in the file, oldest first (none when the file does not exist)."""
    return read_jsonl(path, MonitorOverride)
