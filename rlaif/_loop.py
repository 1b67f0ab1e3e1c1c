"""``judgeloop loop``: rounds of generate -> judge -> audit sample -> gate -> preferences -> monitors -> train -> evaluate.

Every round works under ``<run_dir>/round-<n>/`` and records each finished step in
``<run_dir>/loop.json`` (written atomically), so a killed loop resumes at the step after the last
finished one; the steps themselves resume too (generation and judging skip every request already
written, preferences and training are no-ops for the same inputs), so nothing is recomputed.

Humans govern: the gate step asks :func:`judge.audit.gate` about the labels of *this round's*
audit sample. A failing gate stops the round (:class:`LoopStopped`, with what is missing); the loop
goes on when reviewers have labelled enough (rerun, or ``until_gate`` to wait), or when a person
overrides it with a reason, which is stored in the audit store and kept in the round's record.
The monitor step measures the round's policy (diversity, tails, length, repetition, refusals,
judge-score inflation) and, when a configured threshold is crossed, stops before training in the
same way. An override lets pass only what stopped the run it was given to.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from judge.core._errors import JudgeloopError
from judge.core._io import write_json
from rlaif._loop_config import LoopConfig

__all__ = ["STEPS", "LoopResult", "LoopStopped", "run_loop"]

#: A round's steps, in order.
STEPS = ("generate", "judge", "audit", "gate", "prefs", "mix", "monitor", "train", "eval", "probe")


class LoopStopped(JudgeloopError):
    """The loop stopped before a step it may not take (a failing gate, an alarm)."""

    def __init__(self, message: str, round_no: int, step: str, reasons: list[str]) -> None:
        super().__init__(message)
        self.round = round_no
        self.step = step
        self.reasons = reasons


@dataclass
class LoopResult:
    """What a run of the loop did: the state of every round and which steps ran now."""

    run_dir: Path
    rounds: dict[int, dict[str, Any]]
    ran: list[tuple[int, str]] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)

    def table(self) -> str:
        lines = [f"loop {self.run_dir}: {len(self.rounds)} round(s)"]
        for r, steps in sorted(self.rounds.items()):
            ev = steps.get("eval", {})
            wr = ev.get("win_rate")
            ci = ev.get("ci") or (None, None)
            gate = steps.get("gate", {})
            gate_s = "overridden" if gate.get("overridden") else ("passed" if gate.get("passed") else "-")
            mix = steps.get("mix", {})
            lines.append(
                f"  round {r}: {steps.get('generate', {}).get('candidates', '-')} candidates, "
                f"{steps.get('prefs', {}).get('pairs', '-')} pairs, gate {gate_s}, synthetic share "
                f"{mix.get('synthetic_share', '-')}, win rate {wr if wr is not None else '-'}"
                + (f" [{ci[0]}, {ci[1]}]" if ci[0] is not None else "")
            )
        return "\n".join(lines)


class _State:
    """``loop.json``: the config's identity and every finished step's result, rewritten atomically."""

    def __init__(self, cfg: LoopConfig) -> None:
        self.path = cfg.run_dir / "loop.json"
        ident = hashlib.sha256(json.dumps(cfg.identity(), sort_keys=True).encode()).hexdigest()
        if self.path.is_file():
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("config_hash") != ident:
                from judge.core._errors import ConfigError

                raise ConfigError(
                    f"{cfg.run_dir} holds a loop started with another config (see {cfg.run_dir / 'config.json'}); "
                    "only `rounds` may change when a loop is resumed: use a new run_dir"
                )
            self.data = data
        else:
            cfg.run_dir.mkdir(parents=True, exist_ok=True)
            write_json(cfg.run_dir / "config.json", cfg.model_dump(mode="json"))
            self.data = {"config_hash": ident, "created_at": _now(), "rounds": {}}
            self.save()

    def done(self, r: int, step: str) -> dict[str, Any] | None:
        return self.data["rounds"].get(str(r), {}).get(step)

    def finish(self, r: int, step: str, result: dict[str, Any]) -> None:
        self.data["rounds"].setdefault(str(r), {})[step] = {**result, "finished_at": _now()}
        self.save()

    def save(self) -> None:
        write_json(self.path, self.data, default=str)

    def rounds(self) -> dict[int, dict[str, Any]]:
        return {int(r): steps for r, steps in self.data["rounds"].items()}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


class _Round:
    """The paths and settings of one round."""

    def __init__(self, cfg: LoopConfig, r: int) -> None:
        self.cfg, self.r = cfg, r
        self.dir = cfg.run_dir / f"round-{r}"
        self.candidates = self.dir / "candidates.jsonl"
        self.judgments = self.dir / "judgments.jsonl"
        self.prefs = self.dir / "prefs"
        self.mix = self.dir / "train_mix"
        self.policy_out = self.dir / "policy"
        self.eval_new = self.dir / "eval_answers.jsonl"
        self.eval_pairs = self.dir / "eval_pairs.jsonl"
        self.eval_judgments = self.dir / "eval_judgments.jsonl"

    @property
    def policy_in(self) -> str:
        if self.r == 0:
            from judge.backends._models import resolve_model

            return resolve_model(self.cfg.policy)
        return str(self.cfg.run_dir / f"round-{self.r - 1}" / "policy")

    @property
    def eval_old(self) -> Path:
        # The previous policy's answers: the previous round's evaluation, or round 0's baseline.
        if self.r == 0:
            return self.dir / "eval_answers_base.jsonl"
        return self.cfg.run_dir / f"round-{self.r - 1}" / "eval_answers.jsonl"

    @property
    def pairwise(self) -> bool:
        from judge.inputs._rubric import resolve_rubric

        return any(resolve_rubric(r).mode == "pairwise" for r in self.cfg.judge.rubrics)


def run_loop(
    cfg: LoopConfig,
    *,
    judge_backend: Any | None = None,
    until_gate: bool = False,
    override: tuple[str, str] | None = None,
    progress: bool = True,
    on_step: Callable[[int, str], None] | None = None,
) -> LoopResult:
    """Run (or resume) the loop until ``cfg.rounds`` rounds are finished.

    Args:
        cfg: the loop.
        judge_backend: a ready backend for the judge (it does not change across rounds); None
            creates the configured one once, on first use, and closes it at the end.
        until_gate: at a failing gate, wait for reviewers (polling the audit store every
            ``audit.poll_s`` seconds) instead of stopping.
        override: ``(reviewer, reason)``: let a failing gate of the current round pass; recorded
            in the audit store and in the round's record.
        progress: one line per step on stderr, and the steps' own progress bars.
        on_step: called with (round, step) after every finished step (tests use it to crash a run).

    Raises:
        LoopStopped: a gate did not clear the judge (or an alarm fired); the state is saved and a
            rerun continues from that step.
    """
    from rlaif._loop_steps import Steps

    state = _State(cfg)
    result = LoopResult(cfg.run_dir, {})
    steps = Steps(cfg, judge_backend, progress, until_gate, override)
    try:
        for r in range(cfg.rounds):
            rd = _Round(cfg, r)
            rd.dir.mkdir(parents=True, exist_ok=True)
            for step in STEPS:
                if state.done(r, step) is not None:
                    result.skipped.append((r, step))
                    continue
                _say(progress, f"loop: round {r}: {step}")
                t0 = time.perf_counter()
                out = getattr(steps, step)(rd, state)
                out["seconds"] = round(time.perf_counter() - t0, 3)
                state.finish(r, step, out)
                result.ran.append((r, step))
                if on_step is not None:
                    on_step(r, step)
            _write_round(rd, state)
    finally:
        steps.close()
        result.rounds = state.rounds()
    return result


def _write_round(rd: _Round, state: _State) -> None:
    """``round-<n>/metrics.json``: the round's record, self-contained."""
    steps = state.rounds().get(rd.r, {})
    record = {"round": rd.r, "policy_in": rd.policy_in, "policy_out": str(rd.policy_out), "steps": steps}
    write_json(rd.dir / "metrics.json", record, default=str)
