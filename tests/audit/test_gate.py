"""The gate: exit codes, what a failure names, scoping to the judge, overrides and canaries."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from audit_helpers import make_judgment as mj
from click.testing import CliRunner

from judge.audit import AuditStore, HumanLabel, canary_check, gate, judgment_scope
from judge.cli import main


def _judgments(path: Path, n: int = 200, model_hash: str = "fp-1") -> Path:
    js = [mj(f"p{i}", scores={"helpful": 3}, margin=0.6 if i % 10 else 0.05, model_hash=model_hash) for i in range(n)]
    js += [mj(f"u{i}", status="unscored", model_hash=model_hash) for i in range(5)]
    path.write_text("".join(j.model_dump_json() + "\n" for j in js))
    return path


def _sample(tmp: Path, store: Path, name: str = "j.jsonl", **kw) -> None:
    r = CliRunner().invoke(main, ["audit", "sample", str(_judgments(tmp / name, **kw)), "--budget", "120", "--store", str(store), "--seed", "1"])
    assert r.exit_code == 0, r.output


def _label_all(store: Path, p_agree: float, seed: int = 0, limit: int | None = None, reviewer: str = "alice") -> None:
    st = AuditStore(store)
    rng = np.random.default_rng(seed)
    for s in st.samples()[:limit]:
        agree = s.judge_output.status == "scored" and rng.random() < p_agree
        st.add_label(HumanLabel(sample_id=s.sample_id, reviewer=reviewer, phase="before_reveal",
                                value={"helpful": 3 if agree else 1}))


def _gate(store: Path, *args: str):
    return CliRunner().invoke(main, ["audit", "gate", "--store", str(store), *args])


def test_exit_codes_and_what_is_missing(tmp_path: Path):
    store = tmp_path / "audit.sqlite"
    _sample(tmp_path, store)
    r = _gate(store, "--min-labels", "50")
    assert r.exit_code == 1 and "50 more needed" in r.output
    _label_all(store, 0.99, limit=30)
    r = _gate(store, "--min-labels", "50")
    assert r.exit_code == 1 and "20 more needed" in r.output and "agreement lower bound" in r.output
    _label_all(store, 0.99, seed=1, reviewer="bob")  # every sample labelled now
    r = _gate(store, "--min-labels", "50", "--min-agreement", "0.8")
    assert r.exit_code == 0, r.output
    assert "PASS" in r.output
    # A critical stratum: the unscored outputs are all wrong by definition, so that stratum fails by name.
    r = _gate(store, "--min-labels", "50", "--critical-stratum", "unscored")
    assert r.exit_code == 1 and "stratum unscored agreement lower bound" in r.output
    r = _gate(store, "--min-labels", "50", "--critical-stratum", "split_jury")
    assert r.exit_code == 1 and "critical stratum 'split_jury' has no labelled samples" in r.output
    # Usage errors exit 2.
    assert _gate(store, "--override-by", "carol").exit_code == 2
    assert _gate(store, "--min-agreement", "1.5").exit_code == 2
    assert _gate(tmp_path / "missing.sqlite").exit_code == 2


def test_failing_agreement_and_kappa(tmp_path: Path):
    store = tmp_path / "audit.sqlite"
    _sample(tmp_path, store)
    _label_all(store, 0.7)
    r = _gate(store, "--min-labels", "50", "--min-agreement", "0.8")
    assert r.exit_code == 1 and "point estimate itself is not above the bar" in r.output
    d = gate(AuditStore(store), min_labels=50, min_agreement=0.5, min_kappa=0.99)
    assert not d.passed and any(c.name == "kappa" and not c.passed for cs in d.checks.values() for c in cs)
    assert d.passed is False and any("kappa lower bound" in r for r in d.reasons)


def test_after_reveal_labels_do_not_count(tmp_path: Path):
    store = tmp_path / "audit.sqlite"
    _sample(tmp_path, store)
    st = AuditStore(store)
    for s in st.samples():
        st.add_label(HumanLabel(sample_id=s.sample_id, reviewer="a", phase="after_reveal", value={"helpful": 3}))
    r = _gate(store, "--min-labels", "50")
    assert r.exit_code == 1 and "0 before-reveal labels" in r.output


def test_a_pass_is_void_for_a_new_judge(tmp_path: Path):
    store = tmp_path / "audit.sqlite"
    _sample(tmp_path, store)
    _label_all(store, 0.99)
    old = gate(AuditStore(store), min_labels=50)
    assert old.passed
    _sample(tmp_path, store, name="j2.jsonl", model_hash="fp-2")  # the judge model changed
    r = _gate(store, "--min-labels", "50")
    assert r.exit_code == 1 and "no before-reveal labels for this judge/rubric/prompt scope" in r.output
    assert "do not count" in r.output
    assert gate(AuditStore(store), min_labels=50, scopes=old.scopes).passed  # the old scope's pass is its own
    # The training loop asks for its judge's scope, computed from one of its judgments.
    assert judgment_scope(mj("p0", model_hash="fp-1")) == old.scopes[0]
    assert not gate(AuditStore(store), min_labels=50, scopes=[judgment_scope(mj("p0", model_hash="fp-2"))]).passed


def test_override_is_recorded_and_never_silent(tmp_path: Path):
    store = tmp_path / "audit.sqlite"
    _sample(tmp_path, store)
    _label_all(store, 0.99, limit=20)
    assert _gate(store, "--min-labels", "50").exit_code == 1
    r = _gate(store, "--min-labels", "50", "--override-by", "carol", "--reason", "pilot round, reviewed by hand")
    assert r.exit_code == 0 and "OVERRIDDEN" in r.output and "carol" in r.output and "30 more needed" in r.output
    st = AuditStore(store)
    assert [o.reviewer for o in st.overrides()] == ["carol"]
    d = gate(st, min_labels=50)
    assert d.passed and d.overridden and d.reasons and d.overrides[0].reason.startswith("pilot")
    assert not gate(st, min_labels=60).passed  # other settings: the override does not apply
    rep = CliRunner().invoke(main, ["audit", "report", "--store", str(store), "--reps", "50"])
    assert "OVERRIDE by carol" in rep.output


def _eval_report(acc: float, lo: float, hi: float, sha: str = "abc") -> dict:
    return {"data": "canary.jsonl", "data_sha256": sha, "judges": {"helpfulness": {"accuracy": {"value": acc, "ci95": [lo, hi]}}}}


def test_canary_drop_fails_the_gate(tmp_path: Path):
    assert canary_check(_eval_report(0.70, 0.62, 0.78), _eval_report(0.90, 0.85, 0.95)).flagged
    assert not canary_check(_eval_report(0.88, 0.80, 0.95), _eval_report(0.90, 0.85, 0.95)).flagged
    store = tmp_path / "audit.sqlite"
    _sample(tmp_path, store)
    _label_all(store, 0.99)
    good, bad, other = tmp_path / "good.json", tmp_path / "bad.json", tmp_path / "other.json"
    good.write_text(json.dumps(_eval_report(0.90, 0.85, 0.95)))
    bad.write_text(json.dumps(_eval_report(0.70, 0.62, 0.78)))
    other.write_text(json.dumps(_eval_report(0.90, 0.85, 0.95, sha="zzz")))
    r = _gate(store, "--min-labels", "50", "--canary-report", str(good))
    assert r.exit_code == 0 and "becomes the baseline" in r.output  # the first accepted canary
    r = _gate(store, "--min-labels", "50", "--canary-report", str(bad))
    assert r.exit_code == 1 and "the judge drifted" in r.output
    assert _gate(store, "--min-labels", "50", "--canary-report", str(other)).exit_code == 2


def test_the_gate_uses_the_anytime_valid_bound(tmp_path: Path):
    # One design cell (no risk flags): the gate's agreement bound is the confidence sequence of the
    # labelled samples in labelling order, without replacement from the cell's N decisions.
    from judge.audit import cs_lower_bound

    js = [mj(f"p{i}", scores={"helpful": 3}, margin=0.6) for i in range(300)]
    (tmp_path / "j.jsonl").write_text("".join(j.model_dump_json() + "\n" for j in js))
    store = tmp_path / "audit.sqlite"
    assert CliRunner().invoke(main, ["audit", "sample", str(tmp_path / "j.jsonl"), "--budget", "100", "--store", str(store)]).exit_code == 0
    _label_all(store, 0.9, limit=80)
    st = AuditStore(store)
    ys = [1.0 if lab.value == {"helpful": 3} else 0.0 for lab in st.labels()]
    d = gate(st, min_labels=10, min_agreement=0.5, alpha=0.1)
    check = next(c for c in d.checks[d.scopes[0]] if c.name == "agreement")
    assert check.value == round(cs_lower_bound(ys, 0.1, N=300), 4)
    assert check.value < float(np.mean(ys))
