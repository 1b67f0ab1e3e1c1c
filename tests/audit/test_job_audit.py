"""A judging job's own oversight: its audit sample drawn as it ends, and its canary re-scored with its judge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from judge.audit import AuditStore
from judge.core._config import JobConfig
from judge.runner import run_job

pytestmark = [pytest.mark.vllm, pytest.mark.model]

DATA = Path(__file__).resolve().parent.parent / "data"


def _job(tmp: Path, **audit) -> JobConfig:
    rows = [json.loads(x) for x in (DATA / "points_labelled.jsonl").read_text().splitlines()]
    data = tmp / "items.jsonl"
    data.write_text("".join(json.dumps({k: r[k] for k in ("id", "prompt", "response")}) + "\n" for r in rows[:10]))
    return JobConfig(data=data, output=tmp / "out" / "judgments.jsonl", rubrics=["helpfulness"],
                     sampling={"max_tokens": 16}, audit=audit or None)


def test_the_job_draws_its_audit_sample_and_a_rerun_adds_none(tmp_path, vllm_backend):
    cfg = _job(tmp_path, budget=4, seed=1)
    s = run_job(cfg, backend=vllm_backend, progress=False)
    store_path = tmp_path / "out" / "audit.sqlite"
    assert s.audit_sample is not None and s.audit_sample.store == str(store_path)
    assert (s.audit_sample.samples, s.audit_sample.population, s.audit_sample.new) == (4, 10, 4)
    samples = AuditStore(store_path).samples()
    assert len(samples) == 4 and all(0 < x.inclusion_prob <= 1 for x in samples)
    assert all(x.item is not None and x.judge_input for x in samples)  # reviewers see what the judge saw
    assert "audit sample" in s.table()
    again = run_job(cfg, backend=vllm_backend, progress=False)
    assert again.audit_sample.new == 0 and len(AuditStore(store_path).samples()) == 4
    assert json.loads((tmp_path / "out" / "judgments.summary.json").read_text())["audit_sample"]["run_id"] == s.audit_sample.run_id


def test_every_job_rescores_its_canary_and_a_drop_is_flagged(tmp_path, vllm_backend):
    canary = tmp_path / "canary.jsonl"
    canary.write_text("".join((DATA / "points_labelled.jsonl").read_text().splitlines(keepends=True)[:12]))
    cfg = _job(tmp_path, canary=canary)
    s = run_job(cfg, backend=vllm_backend, progress=False)
    assert s.canary is not None and s.canary.accepted is None and not s.canary.flagged
    report = json.loads(Path(s.canary.report).read_text())
    assert report["rows"] == 12 and "accuracy" in report["judges"]["helpfulness"]
    # The canary's judgments come from this job's judge (same backend identity).
    canary_judgments = [json.loads(x) for x in (Path(s.canary.report).parent / "judgments.jsonl").read_text().splitlines()]
    job_judgments = [json.loads(x) for x in (tmp_path / "out" / "judgments.jsonl").read_text().splitlines()]
    assert {j["judge"]["model_hash"] for j in canary_judgments} == {j["judge"]["model_hash"] for j in job_judgments}

    # The same judge against its own accepted report: no drop.
    accepted = Path(str(tmp_path / "out" / "audit.sqlite") + ".canary-accepted.json")
    accepted.write_text(Path(s.canary.report).read_text())
    same = run_job(cfg, backend=vllm_backend, progress=False)
    assert same.canary.accepted == str(accepted) and not same.canary.flagged, same.canary.detail
    # A baseline the judge once reached with a tight interval, far above today's agreement: flagged.
    base = json.loads(accepted.read_text())
    base["judges"]["helpfulness"]["accuracy"] = {"value": 1.0, "ci95": [0.98, 1.0]}
    accepted.write_text(json.dumps(base))
    drifted = run_job(cfg, backend=vllm_backend, progress=False)
    assert report["judges"]["helpfulness"]["accuracy"]["value"] < 0.9
    assert drifted.canary.flagged and "canary FLAGGED" in drifted.table()
    # The gate fails on it: `audit gate --canary-report` with the job's report.
    from click.testing import CliRunner

    from judge.audit import HumanLabel
    from judge.cli import main

    store_path = tmp_path / "out" / "audit.sqlite"
    run_job(cfg.model_copy(update={"audit": cfg.audit.model_copy(update={"budget": 6})}), backend=vllm_backend, progress=False)
    store = AuditStore(store_path)
    for x in store.samples():
        store.add_label(HumanLabel(sample_id=x.sample_id, reviewer="r", phase="before_reveal",
                                   value=dict(x.judge_output.scores or {"helpfulness": 3})))
    store.close()
    args = ["audit", "gate", "--store", str(store_path), "--min-labels", "1", "--min-agreement", "0"]
    assert CliRunner().invoke(main, args).exit_code == 0
    res = CliRunner().invoke(main, [*args, "--canary-report", drifted.canary.report])
    assert res.exit_code == 1 and "canary" in res.output.lower(), res.output
