"""The end-of-job step streams: its statistics, pair verdicts and bias diagnostics equal those
computed from the whole file in memory, wherever the two orders of a pair were written, and its
memory does not grow with the job."""

from __future__ import annotations

import json
import random
import tracemalloc

import pytest

from judge.runner._finish import finish_job
from judge.backends import ScriptedBackend
from judge.analysis._bias import BiasStats, diagnostics, item_features
from judge.core._config import JobConfig
from judge.runner._engine import JobSummary, run_job
from judge.analysis._metrics import spearman
from judge.core._records import JudgeInfo, Judgment, RubricRef, SamplingParams, stable_hash
from judge.inputs._rubric import resolve_rubric
from judge.analysis._verdicts import pair_verdicts, read_judgments, read_pair_verdicts, verdicts_path
from verdict_helpers import first_token

RUBRICS = ["helpfulness", "instruction_following"]


def _hashed(prompt, params) -> random.Random:
    return random.Random(stable_hash([m.content for m in prompt]))


def mixed_judge() -> ScriptedBackend:
    """A deterministic judge with varied verdicts: a distribution over the allowed values."""

    def respond(prompt, params):
        rng = _hashed(prompt, params)
        weights = [rng.random() + 0.01 for _ in params.choices]
        total = sum(weights)
        return first_token({c: w / total for c, w in zip(params.choices, weights)})

    return ScriptedBackend(respond)


def write_rows(path, n: int, seed: int = 0):
    rng = random.Random(seed)
    gens = ["scripted", "other-model", "third"]
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            row = {
                "id": f"it-{i:05d}",
                "prompt": f"Question {i}?",
                "response": "answer " * rng.randint(1, 9) + str(i),
                "response_a": "a" * rng.randint(1, 30) + str(i),
                "response_b": "b" * rng.randint(1, 30) + str(i),
                "meta": {"generator": rng.choice(gens), "generator_a": rng.choice(gens), "generator_b": rng.choice(gens)},
            }
            fh.write(json.dumps(row) + "\n")
    return path


def _job(tmp_path, n=40, **kw) -> JobConfig:
    return JobConfig(
        data=write_rows(tmp_path / "rows.jsonl", n),
        output=tmp_path / "out" / "j.jsonl",
        rubrics=RUBRICS,
        judge={"backend": "scripted", "model": "scripted"},
        batch_size=7,
        **kw,
    )


def _in_memory(cfg: JobConfig) -> tuple[list, dict]:
    """Verdicts and bias diagnostics from the whole file held in memory (the list functions)."""
    rubrics = [resolve_rubric(r) for r in cfg.rubrics]
    judgments = read_judgments(cfg.output)
    s = cfg.scoring
    verdicts = pair_verdicts(judgments, s.pairwise_policy, s.tie_threshold, cfg.sampling.seed)
    features = item_features(cfg, rubrics)
    names = [cfg.judge.model] + sorted({j.judge.model for j in judgments})
    bias = {
        r.id: diagnostics(
            r,
            [j for j in judgments if j.rubric.hash == r.content_hash],
            [v for v in verdicts if v.rubric.hash == r.content_hash],
            features,
            names,
        )
        for r in rubrics
    }
    return verdicts, bias


@pytest.mark.parametrize("policy", ["strict", "average-probability"])
def test_streamed_end_step_equals_the_in_memory_computation(tmp_path, policy):
    cfg = _job(tmp_path, scoring={"pairwise_policy": policy, "tie_threshold": 0.1})
    run_job(cfg, backend=mixed_judge(), progress=False)
    # Scatter the orders of every pair across the file, and add a second judgment of one order of
    # a pair (as a reopened job writes): the later line is the one that counts.
    lines = cfg.output.read_text(encoding="utf-8").splitlines()
    random.Random(5).shuffle(lines)
    pair_line = next(ln for ln in lines if json.loads(ln)["kind"] == "pairwise")
    again = json.loads(pair_line)
    again["winner"] = {"A": "B", "B": "A", "tie": "A"}[again["winner"]]
    again["extra"]["p_a"] = 1.0 - again["extra"]["p_a"]
    lines.append(json.dumps(again))
    cfg.output.write_text("\n".join(lines) + "\n", encoding="utf-8")

    summary = JobSummary(output=str(cfg.output))
    rubrics = [resolve_rubric(r) for r in cfg.rubrics]
    n = finish_job(cfg, cfg.output, rubrics, summary)
    want_verdicts, want_bias = _in_memory(cfg)

    got = read_pair_verdicts(verdicts_path(cfg.output))
    assert n == len(got) == 40
    assert [v.model_dump() for v in got] == [v.model_dump() for v in want_verdicts]
    assert {r: summary.rubrics[r].bias for r in RUBRICS} == want_bias
    # The pointwise diagnostics have data to disagree on.
    assert want_bias["helpfulness"]["length"]["n_scores"] == 40
    assert want_bias["helpfulness"]["self_preference"]["n"] > 0
    assert want_bias["instruction_following"]["length"]["n_pairs"] > 0
    assert summary.judgments == 40 + 80 + 1
    pairs = summary.rubrics["instruction_following"].pairs.model_dump()
    assert pairs["winners"] == {
        k: sum(1 for v in want_verdicts if (v.winner or "unscored") == k)
        for k in {v.winner or "unscored" for v in want_verdicts}
    }
    crit = summary.rubrics["helpfulness"].criteria["helpfulness"].model_dump()
    scores = [j.scores["helpfulness"] for j in read_judgments(cfg.output) if j.kind == "pointwise"]
    assert crit == {"mean": round(sum(scores) / len(scores), 4), "n": 40}
    assert not list(cfg.output.parent.glob("*.finish.sqlite*"))  # the scratch file is gone


def test_rank_correlation_in_sqlite_equals_the_metric_with_ties():
    rng = random.Random(1)
    info = JudgeInfo(model="m", model_hash="0", backend="scripted")
    ref = RubricRef(id="helpfulness", version=1, hash=resolve_rubric("helpfulness").content_hash)
    stats = BiasStats()
    xs, ys = [], []
    for i in range(2500):  # more than one flush of rows
        overall = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0])  # many ties
        length = rng.randint(1, 40) + int(overall * 20)
        j = Judgment(
            key=str(i), item_id=str(i), rubric=ref, judge=info, sampling=SamplingParams(), prompt_hash="p",
            kind="pointwise", status="scored", scores={"helpfulness": 3}, overall=overall, raw_output="3",
        )  # fmt: skip
        stats.add_judgment(j, {"len": length, "gen": None})
        xs.append(overall)
        ys.append(length)
    got = stats.length(resolve_rubric("helpfulness"))
    assert got["n_scores"] == 2500
    assert got["score_length_spearman"] == pytest.approx(round(spearman(xs, ys), 4), abs=1e-4)
    assert got["score_length_spearman"] > 0.3


def _peak_kib(cfg: JobConfig) -> float:
    rubrics = [resolve_rubric(r) for r in cfg.rubrics]
    tracemalloc.start()
    try:
        finish_job(cfg, cfg.output, rubrics, JobSummary(output=str(cfg.output)))
        return tracemalloc.get_traced_memory()[1] / 1024
    finally:
        tracemalloc.stop()


def test_end_step_memory_does_not_grow_with_the_job(tmp_path, monkeypatch):
    # Rows are buffered in chunks before they go to SQLite: small chunks, so that both sizes fill
    # them and what is left to compare is whatever else grows.
    monkeypatch.setattr("judge.core._io.CHUNK", 100)
    peaks = {}
    for n in (300, 3000):
        (tmp_path / str(n)).mkdir()
        cfg = _job(tmp_path / str(n), n=n)
        run_job(cfg, backend=mixed_judge(), progress=False)
        peaks[n] = _peak_kib(cfg)
    # Ten times the judgments (3,000 pointwise and 6,000 pairwise), the same Python memory: the
    # peak is one judgment and one chunk of rows, never the file (in memory it would be ~30x).
    assert peaks[3000] < 1.3 * peaks[300], peaks
