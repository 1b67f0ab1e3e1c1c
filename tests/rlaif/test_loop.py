"""The gated RLAIF loop end to end: a tiny policy (built here) judged by the bundled model.

Two rounds on a handful of prompts: the first stops at its gate until a reviewer labels the round's
sample; a crash after training and a resume that redoes nothing; the second round's gate stops it
again (round 0's labels do not clear round 1's feedback) until a person overrides, which is kept.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from rlaif_helpers import PROMPTS, changed_tensors, preference_rows, write_jsonl

from judge.audit import AuditStore, HumanLabel
from judge.core._config import GenerationSamplingConfig, JudgeConfig, JudgeSpec, SamplingConfig
from judge.core._errors import ConfigError
from rlaif._loop import LoopStopped, run_loop
from rlaif._loop_config import HumanData, LoopAudit, LoopConfig, LoopEval, LoopGenerate, load_loop_config
from rlaif._prefs_records import PrefsConfig



ROOT = Path(__file__).resolve().parents[2]

# Judged texts are data: a prompt carrying markup travels through every step and into the report.
PAYLOAD = "<script>document.title='pwned'</script>"


def _config(tmp: Path, tiny: Path, rounds: int = 2, **kw) -> LoopConfig:
    texts = [PROMPTS[0] + " " + PAYLOAD] + PROMPTS[1:4]
    prompts = write_jsonl(tmp / "prompts.jsonl", [{"id": f"p{i}", "prompt": p} for i, p in enumerate(texts)])
    human = write_jsonl(tmp / "human.jsonl", preference_rows())
    base = dict(
        run_dir=tmp / "loop", rounds=rounds, policy=str(tiny), prompts=prompts,
        generate=LoopGenerate(backend="hf", k=3, batch_size=16,
                              sampling=GenerationSamplingConfig(temperature=1.0, top_p=1.0, max_tokens=10, seed=0)),
        judge=JudgeSpec(rubrics=["helpfulness"], judge=JudgeConfig(backend="vllm", model="bundled"),
                        sampling=SamplingConfig(max_tokens=16)),
        audit=LoopAudit(budget=6, min_labels=4, min_agreement=0.05),
        prefs=PrefsConfig(min_score_margin=0.0, max_length_ratio=None, dedup_threshold=1.0, test_fraction=0.0),
        train={"algorithm": "dpo", "max_steps": 2, "batch_size": 2, "learning_rate": 1e-3, "max_length": 64},
        human_data=HumanData(path=human, share=0.25),
        eval=LoopEval(max_tokens=8, limit=3, reps=200),
        spec=ROOT / "configs" / "spec.yaml",
        probes=write_jsonl(tmp / "probes.jsonl", [{"id": "fact", "prompt": "What is the capital of France?"},
                                                   {"id": "format", "prompt": "Answer with one word: a colour."}]),
    )
    base.update(kw)
    return LoopConfig(**base)


def _label_round(store_path: Path, run_id: str, reviewer: str = "rev") -> int:
    """A reviewer labels every sample of the run before the reveal, agreeing with the judge where it scored."""
    store = AuditStore(store_path)
    n = 0
    for s in store.samples(run_id):
        scores = s.judge_output.scores or {c["name"]: 3 for c in (s.rubric_def or {}).get("criteria", [])}
        store.add_label(HumanLabel(sample_id=s.sample_id, reviewer=reviewer, phase="before_reveal", value=dict(scores)))
        n += 1
    store.close()
    return n


class _Crash(Exception):
    pass


@pytest.mark.vllm
@pytest.mark.model
@pytest.mark.slow
def test_two_gated_rounds_with_crash_resume_and_override(tmp_path, tiny_model, vllm_backend):
    cfg = _config(tmp_path, tiny_model)
    state = cfg.run_dir / "loop.json"

    # Round 0 stops at its gate: nobody has labelled its sample, so nothing is trained.
    with pytest.raises(LoopStopped) as stop:
        run_loop(cfg, judge_backend=vllm_backend, progress=False)
    assert (stop.value.round, stop.value.step) == (0, "gate")
    assert any("labels" in r for r in stop.value.reasons), stop.value.reasons
    steps = json.loads(state.read_text())["rounds"]["0"]
    assert set(steps) == {"generate", "judge", "audit"}
    assert not (cfg.run_dir / "round-0" / "policy").exists()
    gate0 = json.loads((cfg.run_dir / "round-0" / "gate.json").read_text())
    assert gate0["passed"] is False

    # Candidates carry their provenance and are judged: k per prompt, sampled, synthetic.
    cands = [json.loads(x) for x in (cfg.run_dir / "round-0" / "candidates.jsonl").read_text().splitlines()]
    assert len(cands) == 4 * 3
    assert all(c["synthetic"] and c["round"] == 0 for c in cands)
    assert steps["judge"]["items"] == 12

    # --until-gate waits while a reviewer labels round 0's sample; then the loop goes on, and
    # crashes right after training.
    labelled: list[int] = []
    reviewer = threading.Timer(1.0, lambda: labelled.append(_label_round(cfg.audit.store, steps["audit"]["run_id"])))

    def crash(r: int, step: str) -> None:
        if (r, step) == (0, "train"):
            raise _Crash()

    waiting = cfg.model_copy(update={"audit": cfg.audit.model_copy(update={"poll_s": 0.2})})
    reviewer.start()
    with pytest.raises(_Crash):
        run_loop(waiting, judge_backend=vllm_backend, progress=False, until_gate=True, on_step=crash)
    reviewer.join()
    assert labelled and labelled[0] >= 4
    steps = json.loads(state.read_text())["rounds"]["0"]
    assert steps["gate"]["passed"] and not steps["gate"]["overridden"]
    assert steps["train"]["steps"] == 2
    changed, total = changed_tensors(tiny_model, cfg.run_dir / "round-0" / "policy")
    assert changed > 0, f"training changed none of {total} tensors"

    # Resume: the finished steps are skipped; round 0 evaluates, round 1 stops at its own gate
    # (round 0's labels do not clear round 1's feedback).
    with pytest.raises(LoopStopped) as stop:
        run_loop(cfg, judge_backend=vllm_backend, progress=False)
    assert (stop.value.round, stop.value.step) == (1, "gate")
    data = json.loads(state.read_text())["rounds"]
    assert set(data["0"]) >= {"eval"} and "prefs" not in data["1"]
    wr = data["0"]["eval"]
    assert wr["pairs"] >= 1 and 0.0 <= wr["win_rate"] <= 1.0
    assert wr["wins"] + wr["losses"] + wr["ties"] + wr["inconsistent"] == wr["pairs"]
    # Round 1's candidates came from round 0's checkpoint.
    assert data["1"]["generate"]["policy"] == str(cfg.run_dir / "round-0" / "policy")

    # A person overrides round 1's gate with a reason: the loop finishes, and the override is kept.
    result = run_loop(cfg, judge_backend=vllm_backend, progress=False, override=("alice", "spot-checked by hand"))
    gate1 = result.rounds[1]["gate"]
    assert gate1["passed"] and gate1["overridden"]
    overrides = AuditStore(cfg.audit.store).overrides()
    assert [(o.reviewer, o.reason) for o in overrides] == [("alice", "spot-checked by hand")]
    assert "round-1" in overrides[0].scope
    assert (1, "gate") in result.ran and (0, "train") in result.skipped

    # accumulate: round 1 trains on both rounds' pairs and on human rows; the synthetic share is recorded.
    mix = result.rounds[1]["mix"]
    assert set(mix["by_round"]) == {"0", "1"}
    assert mix["human"] >= 1 and mix["synthetic_share"] == round(mix["synthetic"] / mix["rows"], 6) < 1.0
    provenance = json.loads((cfg.run_dir / "round-1" / "train_mix" / "provenance.json").read_text())
    assert provenance["synthetic_share"] == mix["synthetic_share"]
    assert json.loads((cfg.run_dir / "round-1" / "metrics.json").read_text())["steps"]["eval"]["pairs"] >= 1

    # A rerun of a finished loop runs nothing; a lost step marker recomputes nothing either.
    again = run_loop(cfg, judge_backend=vllm_backend, progress=False)
    assert again.ran == []
    raw = json.loads(state.read_text())
    del raw["rounds"]["1"]["judge"]
    state.write_text(json.dumps(raw))
    redo = run_loop(cfg, judge_backend=vllm_backend, progress=False)
    assert redo.ran == [(1, "judge")]
    assert redo.rounds[1]["judge"]["new"] == 0 and redo.rounds[1]["judge"]["resumed"] == 12

    # Monitors of every round's policy: round 1's describe round 0's checkpoint, with the mix about to be used.
    m0 = json.loads((cfg.run_dir / "round-0" / "monitors.json").read_text())
    m1 = json.loads((cfg.run_dir / "round-1" / "monitors.json").read_text())
    assert (m0["round"], m1["round"]) == (0, 1) and m0["n_outputs"] == m1["n_outputs"] == 3
    assert m1["synthetic_share"] == mix["synthetic_share"] and m1["judge_mean"] is not None
    assert m0["audit_estimate"] is not None and m1["audit_estimate"] is None  # only round 0's sample is labelled
    assert m0["mean_length_ratio"] == 1.0 and m1["tail_coverage"] is not None
    # KL to the starting policy: none for the starting policy itself, some once it has been trained.
    assert m0["kl"] == 0.0 and m1["kl"] > 0.0 and m1["kl_source"] == "logprobs:k3"
    assert json.loads((cfg.run_dir / "round-1" / "alarms.json").read_text()) == []
    # Per principle of the spec: the helpfulness rubric's principles get scores, the others are listed empty.
    principles = json.loads((cfg.run_dir / "round-1" / "principles.json").read_text())
    from judge.inputs import resolve_rubric

    cited = set(resolve_rubric("helpfulness").principles)
    assert cited and all(principles[c] is not None for c in cited if c in principles)
    assert any(v is None for k, v in principles.items() if k not in cited)

    # Drift probes: answered and judged every round, compared with the previous policy's answers.
    probes = json.loads((cfg.run_dir / "round-1" / "probes.json").read_text())
    assert {p["probe"] for p in probes["probes"]} == {"fact", "format"}
    assert all(p["new_answer"] is not None and p["old_answer"] is not None for p in probes["probes"])
    moved = [p for p in probes["probes"] if p["change"] is not None]
    assert moved, probes
    assert probes["biggest_movers"] == [p["probe"] for p in sorted(moved, key=lambda p: -abs(p["change"]))]
    assert all(p["change"] == round(p["new_score"] - p["old_score"], 6) for p in moved)

    # The round report: every round, the gates, the override, win rates, examples side by side.
    from rlaif._report import build_round_report, render_round_report

    rep = build_round_report(cfg.run_dir)
    assert [r["round"] for r in rep["rounds"]] == [0, 1]
    assert [r["candidates"] for r in rep["rounds"]] == [12, 12]
    assert rep["rounds"][0]["agreement"]["labelled"] >= 4 and rep["rounds"][1]["agreement"]["labelled"] == 0
    assert rep["rounds"][0]["win_rate"]["win_rate"] == wr["win_rate"]
    assert rep["rounds"][0]["scores"]["helpfulness"]["helpfulness"] > 0
    assert [o["reviewer"] for o in rep["overrides"]] == ["alice"]
    assert set(rep["examples"][0]["answers"]) == {"base", "round 0", "round 1"}
    html = render_round_report(rep)
    assert "OVERRIDDEN" in html and "spot-checked by hand" in html and "data:image/png;base64," in html
    assert PAYLOAD not in html and "&lt;script&gt;document.title=" in html
    assert "Drift probes, round 1" in html


def test_replace_policy_trains_on_this_round_only(tmp_path):
    from rlaif._loop_data import mix_training_rows

    dirs = {}
    for r in (0, 1):
        d = tmp_path / f"p{r}"
        write_jsonl(d / "train.jsonl", preference_rows()[: 3 + r])
        dirs[r] = d
    acc = mix_training_rows(1, dirs, tmp_path / "acc", algorithm="dpo", policy="accumulate")
    rep = mix_training_rows(1, dirs, tmp_path / "rep", algorithm="dpo", policy="replace")
    assert (acc.rows, acc.by_round) == (7, {"0": 3, "1": 4})
    assert (rep.rows, rep.by_round, rep.synthetic_share) == (4, {"1": 4}, 1.0)
    human = write_jsonl(tmp_path / "human.jsonl", preference_rows())
    mixed = mix_training_rows(1, dirs, tmp_path / "mix", algorithm="dpo", policy="replace",
                              human=HumanData(path=human, share=0.5), seed=3)
    assert (mixed.synthetic, mixed.human, mixed.synthetic_share) == (4, 4, 0.5)
    rows = [json.loads(x) for x in (tmp_path / "mix" / "train.jsonl").read_text().splitlines()]
    assert sorted(r["origin"] for r in rows) == ["human"] * 4 + ["synthetic"] * 4


def test_config_errors_name_the_field(tmp_path, tiny_model):
    with pytest.raises(Exception, match="set by the loop"):
        _config(tmp_path, tiny_model, train={"algorithm": "dpo", "model": "x"})
    with pytest.raises(Exception, match="dpo or kto"):
        _config(tmp_path, tiny_model, train={"algorithm": "reward"})
    with pytest.raises(Exception, match="max_stepz"):
        _config(tmp_path, tiny_model, train={"algorithm": "dpo", "max_stepz": 2})
    bad = tmp_path / "loop.yaml"
    bad.write_text("run_dir: r\nprompts: p.jsonl\ngenerate:\n  k: 1\n")
    with pytest.raises(ConfigError, match=r"loop.yaml:4.*k"):
        load_loop_config(bad)


def test_resume_refuses_another_config(tmp_path, tiny_model):
    from rlaif._loop import _State

    cfg = _config(tmp_path, tiny_model)
    _State(cfg)
    _State(cfg.model_copy(update={"rounds": 5}))  # more rounds: the same loop, continued
    with pytest.raises(ConfigError, match="another config"):
        _State(cfg.model_copy(update={"data_policy": "replace"}))


@pytest.mark.model
def test_cli_stops_at_the_gate_with_status_3_and_says_what_is_missing(tmp_path, tiny_model):
    from click.testing import CliRunner

    from judge.cli import main

    cfg = _config(tmp_path, tiny_model, rounds=1,
                  judge=JudgeSpec(rubrics=["helpfulness"], judge=JudgeConfig(backend="hf", model="bundled"),
                                  sampling=SamplingConfig(max_tokens=16)))
    path = tmp_path / "loop.yaml"
    path.write_text(json.dumps(cfg.model_dump(mode="json")))  # JSON is YAML
    runner = CliRunner()
    res = runner.invoke(main, ["loop", "--config", str(path), "--no-progress"])
    assert res.exit_code == 3, res.output
    assert "oversight gate did not clear the judge" in res.output and "--override-by NAME --reason TEXT" in res.output
    assert "labels" in res.output
    res = runner.invoke(main, ["loop", "--config", str(path), "--override-by", "alice"])
    assert res.exit_code == 2 and "--reason" in res.output
    assert AuditStore(cfg.audit.store).overrides() == []  # nothing recorded without a reason


@pytest.mark.vllm
@pytest.mark.model
@pytest.mark.browser
def test_the_round_report_renders_in_a_browser(tmp_path, tiny_model, vllm_backend):
    import os
    import shutil

    from click.testing import CliRunner

    from judge.cli import main

    chromium = os.environ.get("JUDGELOOP_CHROMIUM", "/usr/bin/chromium")
    if not Path(chromium).exists() or shutil.which("true") is None:
        pytest.fail(f"{chromium} missing (make setup installs Debian's chromium)")
    cfg = _config(tmp_path, tiny_model, rounds=1)
    run_loop(cfg, judge_backend=vllm_backend, progress=False, override=("bob", "first round, labels pending"))
    res = CliRunner().invoke(main, ["report", str(cfg.run_dir)])
    assert res.exit_code == 0, res.output
    page_file = cfg.run_dir / "report.html"
    assert json.loads((cfg.run_dir / "report.json").read_text())["rounds"][0]["gate"]["overridden"] is True
    from playwright.sync_api import sync_playwright

    shots = Path(__file__).resolve().parents[2] / "runs" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = b.new_page(viewport={"width": 1280, "height": 900})
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(page_file.as_uri())
        assert page.title() == "judgeloop round report"  # the payload in a prompt did not run
        assert page.locator("h1").inner_text() == "Round report"
        assert "first round, labels pending" in page.locator("body").inner_text()
        assert PAYLOAD in page.locator("body").inner_text()  # shown as text
        imgs = page.locator("img")
        assert imgs.count() >= 2 and all(imgs.nth(i).evaluate("i => i.naturalWidth") > 0 for i in range(imgs.count()))
        page.screenshot(path=str(shots / "round_report.png"), full_page=True)
        b.close()
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []  # loads nothing


@pytest.mark.vllm
@pytest.mark.model
@pytest.mark.slow
def test_an_alarm_stops_the_round_before_training_until_a_person_overrides_it(tmp_path, tiny_model, vllm_backend):
    # A length-ratio band round 0 cannot be inside (its ratio to itself is 1.0): the alarm must fire.
    cfg = _config(tmp_path, tiny_model, rounds=1, monitors={"mean_length_ratio": {"below": 5.0}})
    with pytest.raises(LoopStopped) as stop:
        run_loop(cfg, judge_backend=vllm_backend, progress=False, override=("alice", "gate checked by hand"))
    assert (stop.value.round, stop.value.step) == (0, "monitor")
    assert str(stop.value).startswith("monitor alarm: round 0: mean length ratio to round 0 1.00 is below the alarm threshold 5.00")
    state = json.loads((cfg.run_dir / "loop.json").read_text())["rounds"]["0"]
    assert state["gate"]["overridden"] and "train" not in state
    assert not (cfg.run_dir / "round-0" / "policy").exists()
    # The gate's override did not pass the alarm, and a rerun without one stops again.
    with pytest.raises(LoopStopped):
        run_loop(cfg, judge_backend=vllm_backend, progress=False)
    res = run_loop(cfg, judge_backend=vllm_backend, progress=False, override=("carol", "length drift expected"))
    assert res.rounds[0]["monitor"]["overridden"] == ["mean_length_ratio"] and "train" in res.rounds[0]
    recorded = [json.loads(x) for x in (cfg.run_dir / "monitor_overrides.jsonl").read_text().splitlines()]
    assert [(o["reviewer"], o["reason"], o["monitor"], o["round"]) for o in recorded] == [
        ("carol", "length drift expected", "mean_length_ratio", 0)]
    alarms = json.loads((cfg.run_dir / "round-0" / "alarms.json").read_text())
    assert [a["overridden"] for a in alarms] == [True]
    assert [o.reviewer for o in AuditStore(cfg.audit.store).overrides()] == ["alice"]


def test_monitor_thresholds_are_checked_when_the_config_loads(tmp_path, tiny_model):
    with pytest.raises(Exception, match="unknown monitor"):
        _config(tmp_path, tiny_model, monitors={"distinct_9": 0.3})
