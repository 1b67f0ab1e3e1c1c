"""The agreement report: rows per judge scope, per criterion and stratum, the ceiling, a self-contained HTML page."""

from __future__ import annotations

import json
import re
from pathlib import Path

from audit_helpers import make_judgment as mj
from click.testing import CliRunner

from judge.audit import AuditStore, HumanLabel, Override, build_report
from judge.cli import main


def _store(tmp: Path) -> Path:
    store = tmp / "audit.sqlite"
    for name, fp in (("a.jsonl", "fp-1"), ("b.jsonl", "fp-2")):
        js = [mj(f"p{i}", scores={"helpful": 3}, margin=0.6 if i % 5 else 0.05, model_hash=fp) for i in range(100)]
        (tmp / name).write_text("".join(j.model_dump_json() + "\n" for j in js))
        r = CliRunner().invoke(main, ["audit", "sample", str(tmp / name), "--budget", "40", "--store", str(store)])
        assert r.exit_code == 0, r.output
    st = AuditStore(store)
    for k, s in enumerate(st.samples()):
        good = s.judge_fingerprint == "fp-1" or k % 2
        st.add_label(HumanLabel(sample_id=s.sample_id, reviewer="<script>alert(1)</script>", phase="before_reveal",
                                value={"helpful": 3 if good else 5}))
        if k % 3 == 0:
            st.add_label(HumanLabel(sample_id=s.sample_id, reviewer="bob", phase="before_reveal", value={"helpful": 3 if good else 1}))
    st.add_override(Override(reviewer="carol", reason="<img src=x onerror=alert(2)>", scope="gate:x"))
    return store


def test_rows_per_scope_with_criteria_strata_and_ceiling(tmp_path: Path):
    rep = build_report(AuditStore(_store(tmp_path)), reps=100)
    rows = {r["judge_fingerprint"]: r for r in rep["rows"]}
    assert set(rows) == {"fp-1", "fp-2"}  # judges are never pooled
    one, two = rows["fp-1"], rows["fp-2"]
    assert one["overall"]["accuracy"]["estimate"] == 1.0
    assert 0.3 < two["overall"]["accuracy"]["estimate"] < 0.7
    lo, hi = two["overall"]["accuracy"]["ci"]
    assert lo < two["overall"]["accuracy"]["estimate"] < hi
    assert set(two["criteria"]) == {"helpful"} and set(two["overall"]) == {"accuracy", "kappa", "alpha", "ac1"}
    assert set(two["strata"]) == {"uniform", "low_margin"}
    assert one["human_ceiling"]["n_samples"] > 5 and one["human_ceiling"]["agreement"] == 1.0
    assert two["human_ceiling"]["agreement"] < 1.0
    assert "rubric's scales" in one["prediction_powered"]["reason"]  # sampled without the rubric
    assert rep["overrides"][0]["reviewer"] == "carol"


def test_html_is_self_contained_and_escaped(tmp_path: Path):
    store = _store(tmp_path)
    out, js = tmp_path / "r.html", tmp_path / "r.json"
    r = CliRunner().invoke(main, ["audit", "report", "--store", str(store), "--html", str(out), "--json", str(js), "--reps", "50"])
    assert r.exit_code == 0, r.output
    html = out.read_text()
    assert "<script" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;img src=x onerror=alert(2)&gt;" in html
    srcs = re.findall(r"""(?:src|href)=['"]([^'"]*)""", html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)  # plots inline, nothing fetched
    assert "default-src 'none'" in html
    assert json.loads(js.read_text())["rows"]
