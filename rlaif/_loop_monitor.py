"""The loop's monitor step: measure the round's policy, and stop before training when an alarm fires.

Round ``n``'s monitors describe the policy that wrote round ``n``'s candidates (round 0: the
starting policy), on the evaluation prompts answered greedily: diversity, length shift against the
starting policy, tail coverage of human-written references, repetition, refusals, the synthetic
share of the training mix about to be used, and judge-score inflation (the judge's mean score of
the round's candidates against the canary agreement and the audit's human-rated quality of the same
round). A threshold crossed (``monitors:`` in the loop config) stops the loop before the round's
training step, unless a person records an override for that monitor and round.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from judge.core._io import atomic_write, write_json

__all__ = ["monitor_step", "per_principle", "references_for"]


def per_principle(cfg: Any, judgments: Path) -> dict[str, float | None] | None:
    """Mean score (0..1) per principle of the loop's spec over a judgments file; None without a spec."""
    if cfg.spec is None or not judgments.is_file():
        return None
    from judge.audit._load import load_judgments
    from judge.inputs._rubric import resolve_rubric
    from judge.inputs._spec import load_spec, principle_scores

    b = principle_scores(load_judgments(judgments), [resolve_rubric(r) for r in cfg.judge.rubrics], load_spec(cfg.spec))
    return {pid: (round(s.mean, 6) if s.mean is not None else None) for pid, s in b.scores.items()}


def _responses(path: Path) -> list[str]:
    out = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                if rec.get("response") is not None:
                    out.append(rec["response"])
    return out


def references_for(cfg: Any, prompts: Path) -> list[str]:
    """Human-written references: the evaluation prompts' ``reference`` column, else the human rows' chosen texts."""
    from judge.inputs._data import iter_items

    refs = [it.reference for it in iter_items(prompts) if getattr(it, "reference", None)]
    if refs or cfg.human_data is None:
        return refs
    from rlaif._datasets import load_training_rows

    rows = load_training_rows(cfg.human_data.path, "dpo").rows
    return [r["chosen"][-1]["content"] for r in rows]


def _judge_mean(judgments: Path) -> float | None:
    vals = []
    for line in judgments.read_text(encoding="utf-8").splitlines():
        if line.strip():
            j = json.loads(line)
            if j.get("status") == "scored" and j.get("overall") is not None:
                vals.append(float(j["overall"]))
    return sum(vals) / len(vals) if vals else None


def _audit_estimate(store_path: Path, run_id: str | None) -> float | None:
    """The human-rated quality of the round's judged decisions (prediction-powered), if labels exist."""
    if run_id is None or not store_path.is_file():
        return None
    from judge.audit._report import build_report
    from judge.audit._store import AuditStore

    store = AuditStore(store_path)
    try:
        rep = build_report(store, reps=200)
    finally:
        store.close()
    for row in rep["rows"]:
        ppi = row.get("prediction_powered") or {}
        if row["run_id"] == run_id and ppi.get("available"):
            return float(ppi["ppi"]["estimate"])
    return None


def _canary_agreement(judge_step: dict[str, Any]) -> float | None:
    check = (judge_step.get("canary") or {}).get("check") or {}
    return check.get("current")


def monitor_step(steps: Any, rd: Any, state: Any) -> dict[str, Any]:
    from rlaif._alarms import (
        MonitorOverride,
        MonitorThresholds,
        alarms_block,
        check_alarms,
        read_monitor_overrides,
        record_monitor_override,
    )
    from rlaif._loop import LoopStopped
    from rlaif._loop_steps import greedy_for
    from rlaif._monitors import append_round_monitors, measure_round, read_round_monitors

    cfg = steps.cfg
    prompts = cfg.eval.prompts or cfg.prompts
    base = cfg.run_dir / "round-0" / "eval_answers_base.jsonl"
    if rd.r == 0:
        steps._generate(rd, prompts, base, rd.policy_in, 1, greedy_for(cfg), cfg.eval.limit)
    answers = base if rd.r == 0 else cfg.run_dir / f"round-{rd.r - 1}" / "eval_answers.jsonl"
    history_file = cfg.run_dir / "monitors.jsonl"
    latest: dict[int, Any] = {}
    for m in read_round_monitors(history_file):  # a step rerun after a crash may have appended twice
        latest[m.round] = m
    history = [latest[r] for r in sorted(latest) if r < rd.r]
    mix = state.done(rd.r, "mix") or {}
    kl: dict[str, Any] = {}
    if cfg.measure_kl and cfg.generate.backend in ("vllm", "hf"):  # local model directories
        from judge.backends._models import resolve_model
        from rlaif._loop_kl import policy_kl

        kl = policy_kl(rd.policy_in, resolve_model(cfg.policy), answers)
    m = measure_round(
        _responses(answers), references_for(cfg, prompts), _responses(base), history, round=rd.r,
        synthetic_share=mix.get("synthetic_share"), judge_mean=_judge_mean(rd.judgments),
        canary_agreement=_canary_agreement(state.done(rd.r, "judge") or {}),
        audit_estimate=_audit_estimate(Path(cfg.audit.store), (state.done(rd.r, "audit") or {}).get("run_id")),
        **kl,
    )
    atomic_write(rd.dir / "monitors.json", m.model_dump_json(indent=1) + "\n")
    principles = per_principle(cfg, rd.judgments)
    if principles is not None:
        write_json(rd.dir / "principles.json", principles)
    if rd.r not in latest or latest[rd.r].model_dump(exclude={"created_at"}) != m.model_dump(exclude={"created_at"}):
        append_round_monitors(history_file, m)
    thresholds = MonitorThresholds.from_mapping(cfg.monitors)
    overrides_file = cfg.run_dir / "monitor_overrides.jsonl"
    alarms = check_alarms(m, thresholds, read_monitor_overrides(overrides_file))
    standing = [a for a in alarms if not a.overridden]
    if standing and steps.override is not None:
        who, why = steps.take_override()
        for a in standing:
            record_monitor_override(overrides_file, MonitorOverride(reviewer=who, reason=why, monitor=a.monitor, round=rd.r))
        alarms = check_alarms(m, thresholds, read_monitor_overrides(overrides_file))
    write_json(rd.dir / "alarms.json", [a.model_dump(mode="json") for a in alarms])
    block = alarms_block(alarms)
    if block is not None:
        raise LoopStopped(
            f"{block}: `judgeloop loop --config CONFIG --override-by NAME --reason TEXT` (recorded "
            f"in {overrides_file}).", rd.r, "monitor", [a.message for a in alarms if not a.overridden],
        )
    return {"monitors": str(rd.dir / "monitors.json"), "alarms": [a.message for a in alarms],
            "overridden": [a.monitor for a in alarms if a.overridden], "distinct_2": m.distinct_2,
            "tail_coverage": m.tail_coverage, "kl": m.kl, "judge_inflation": m.judge_inflation, "judge_inflated": m.judge_inflated}
