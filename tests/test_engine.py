"""The batch engine with a scripted backend: rejects, resume after a crash, torn output, dedup, summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from judge.core._errors import ConfigError, DataError, RubricError
from judge.backends import Completion, ScriptedBackend
from judge.core._config import JobConfig
from judge.runner._engine import job_paths, run_job
from judge.core._records import Judgment, stable_hash

JUDGE_ID = "scripted-judge"


class Crash(RuntimeError):
    """Raised from on_batch to simulate a process dying between two batches."""


def verdict(prompt, params) -> str:
    """A deterministic judge: the verdict depends only on what it is shown."""
    digest = int(stable_hash(prompt[-1].content)[:8], 16)
    schema = params.json_schema or {}
    props = schema.get("properties", {})
    if "winner" in props:
        return json.dumps({"winner": ["A", "B", "tie"][digest % 3]})
    return json.dumps({name: p["enum"][digest % len(p["enum"])] for name, p in props.items()})


class Recorder:
    """A backend factory that counts how often it is called and what each backend judges."""

    def __init__(self, responder=verdict) -> None:
        self.created = 0
        self.backends: list[ScriptedBackend] = []
        self.responder = responder

    def __call__(self) -> ScriptedBackend:
        self.created += 1
        backend = ScriptedBackend(self.responder)
        self.backends.append(backend)
        return backend

    @property
    def prompts(self) -> list:
        return [p for b in self.backends for p, _ in b.calls]


def write_items(path: Path, n: int, start: int = 0) -> Path:
    with path.open("a", encoding="utf-8") as fh:
        for i in range(start, start + n):
            fh.write(json.dumps({"id": f"item-{i}", "prompt": f"Question {i}?", "response": f"Answer {i}."}) + "\n")
    return path


def job(tmp_path: Path, data: Path, name: str = "out", **kw) -> JobConfig:
    kw.setdefault("batch_size", 3)
    kw.setdefault("scoring", {"method": "json"})  # the scripted judge writes JSON verdicts
    return JobConfig(data=data, output=tmp_path / name / "judgments.jsonl", **kw)


def read_judgments(path: Path) -> list[Judgment]:
    return [Judgment.model_validate_json(line) for line in path.read_text(encoding="utf-8").splitlines()]


def key_scores(path: Path) -> set[tuple[str, str, str]]:
    return {(j.key, j.item_id, json.dumps(j.scores, sort_keys=True)) for j in read_judgments(path)}


def run(cfg: JobConfig, backend=None, **kw):
    return run_job(cfg, backend=backend, progress=False, judge_id=JUDGE_ID, **kw)


# ----------------------------------------------------------------------------------------------
# Bad rows


def test_bad_rows_go_to_rejects_with_line_numbers_and_the_job_goes_on(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(
        "\n".join(
            [
                '{"id": "ok-1", "prompt": "p", "response": "r"}',
                '{"id": "broken", "prompt": "unterminated',
                '["not", "an", "object"]',
                '{"id": "no-response", "prompt": "p"}',
                '{"id": "no-prompt", "response": "r"}',
                '{"id": "typo", "prompt": "p", "respnse": "x", "source": "web"}',
                '{"id": [7], "prompt": "p", "response": "r"}',
                '{"id": 7, "prompt": "p3", "response": "r3"}',
                "",
                '{"id": "ok-2", "prompt": "p2", "response": "r2"}',
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    rec = Recorder()
    summary = run(job(tmp_path, data), rec)
    paths = job_paths(summary.output)
    rejects = [json.loads(line) for line in paths.rejects.read_text(encoding="utf-8").splitlines()]
    assert [r["line"] for r in rejects] == [2, 3, 4, 5, 6, 7]
    reasons = {r["line"]: r["error"] for r in rejects}
    assert reasons[2].startswith("invalid JSON")
    assert reasons[3] == "each line must be a JSON object, got list"
    assert "rubric 'helpfulness' (pointwise) needs field(s) ['response']" in reasons[4]
    assert reasons[5].startswith("prompt: Field required")
    # An extra column is kept in meta, not an error; a row lacking a field it may have misspelt says so.
    assert reasons[6] == (
        "rubric 'helpfulness' (pointwise) needs field(s) ['response'] "
        "(column 'respnse' is kept in meta: is it 'response' misspelt?)"
    )
    assert "id: Input should be a valid string" in reasons[7]
    assert rejects[2]["row"] == {"id": "no-response", "prompt": "p"}  # the row itself is kept
    assert [j.item_id for j in read_judgments(paths.output)] == ["ok-1", "7", "ok-2"]  # an integer id is text
    assert (summary.rows, summary.items, summary.rejected, summary.judgments) == (9, 3, 6, 3)


def test_a_bad_rubric_fails_before_the_backend_is_created(tmp_path):
    data = write_items(tmp_path / "d.jsonl", 2)
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: bad\nversion: 1\nmode: ranked\ndescription: d\ncriteria: []\n", encoding="utf-8")
    rec = Recorder()
    with pytest.raises(RubricError, match="bad.yaml:3"):
        run_job(job(tmp_path, data, rubrics=[str(bad)]), backend=rec, progress=False)
    with pytest.raises(RubricError, match="unknown rubric 'nope'"):
        run_job(job(tmp_path, data, rubrics=["nope"]), backend=rec, progress=False)
    with pytest.raises(DataError, match="dataset not found"):
        run_job(job(tmp_path, tmp_path / "absent.jsonl"), backend=rec, progress=False)
    with pytest.raises(ConfigError, match="listed twice"):
        run_job(job(tmp_path, data, rubrics=["honesty", "honesty"]), backend=rec, progress=False)
    assert rec.created == 0
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------------------
# Resume


def test_resume_after_a_crash_does_only_the_missing_work(tmp_path):
    data = write_items(tmp_path / "d.jsonl", 10)
    rubrics = ["helpfulness", "honesty"]  # 20 requests, batches of 3: 7 batches

    reference = job(tmp_path, data, "uninterrupted", rubrics=rubrics)
    run(reference, Recorder())

    cfg = job(tmp_path, data, "crashed", rubrics=rubrics)
    paths = job_paths(cfg.output)

    def crash_after_two(n: int) -> None:
        if n == 2:
            raise Crash("killed")

    first = Recorder()
    with pytest.raises(Crash):
        run(cfg, first, on_batch=crash_after_two)
    assert paths.part.exists() and not paths.output.exists()
    written = [j.key for j in read_judgments(paths.part)]
    assert len(written) == 6

    second = Recorder()
    summary = run(cfg, second)
    redone = {stable_hash([m.model_dump() for m in p]) for p in second.prompts}
    assert len(second.prompts) == 14, "only the 14 missing requests reach the judge"
    assert not paths.part.exists() and paths.output.exists()
    final = read_judgments(paths.output)
    keys = [j.key for j in final]
    assert len(keys) == len(set(keys)) == 20, "every request exactly once"
    assert set(written) <= set(keys)
    assert {j.prompt_hash for j in final if j.key not in written} == redone
    assert key_scores(paths.output) == key_scores(reference.output)
    assert (summary.resumed, summary.new_judgments, summary.judgments) == (6, 14, 20)


def test_a_torn_last_line_is_cut_off_and_redone(tmp_path):
    data = write_items(tmp_path / "d.jsonl", 6)
    reference = job(tmp_path, data, "uninterrupted")
    run(reference, Recorder())

    cfg = job(tmp_path, data, "torn")
    paths = job_paths(cfg.output)
    with pytest.raises(Crash):
        run(cfg, Recorder(), on_batch=lambda n: (_ for _ in ()).throw(Crash()) if n == 1 else None)
    lines = paths.part.read_bytes().splitlines(keepends=True)
    assert len(lines) == 3
    torn_key = json.loads(lines[-1])["key"]
    # The crash hit while the last judgment was being written: half a line, and the batch's
    # judgments never reached the cache either (it is written after the output).
    paths.part.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    for f in paths.cache.parent.glob(paths.cache.name + "*"):
        f.unlink()

    rec = Recorder()
    run(cfg, rec)
    final = read_judgments(paths.output)  # every line parses: the torn one is gone
    keys = [j.key for j in final]
    assert len(keys) == len(set(keys)) == 6
    assert keys.count(torn_key) == 1
    assert len(rec.prompts) == 4, "the torn judgment and the three never written are redone"
    assert key_scores(paths.output) == key_scores(reference.output)


def test_a_torn_line_is_restored_from_the_cache_without_the_judge(tmp_path):
    data = write_items(tmp_path / "d.jsonl", 6)
    cfg = job(tmp_path, data)
    paths = job_paths(cfg.output)
    run(cfg, Recorder())
    complete = key_scores(paths.output)
    # The finished output loses half of its last line (e.g. restored from a bad copy).
    raw = paths.output.read_bytes()
    paths.output.write_bytes(raw[: len(raw) - 40])
    rec = Recorder()
    run(cfg, rec)
    assert key_scores(paths.output) == complete
    assert rec.created == 0


def test_a_finished_job_rerun_never_creates_the_backend(tmp_path):
    data = write_items(tmp_path / "d.jsonl", 5)
    cfg = job(tmp_path, data, rubrics=["helpfulness", "instruction_following"], pairwise_orders="AB")
    data.write_text(
        "".join(
            json.dumps({"id": f"i{i}", "prompt": f"q{i}", "response": "r", "response_a": "a", "response_b": f"b{i}"})
            + "\n"
            for i in range(5)
        ),
        encoding="utf-8",
    )
    first = Recorder()
    run(cfg, first)
    assert first.created == 1 and len(first.prompts) == 10
    before = job_paths(cfg.output).output.read_bytes()

    again = Recorder()
    summary = run(cfg, again)
    assert again.created == 0, "nothing to do: the model is never loaded"
    assert (summary.new_judgments, summary.resumed, summary.judgments) == (0, 10, 10)
    assert job_paths(cfg.output).output.read_bytes() == before

    # New items appended to the dataset: only they are judged.
    with data.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": "new", "prompt": "q", "response": "r", "response_a": "a", "response_b": "z"}) + "\n")
    more = Recorder()
    summary = run(cfg, more)
    assert more.created == 1 and len(more.prompts) == 2
    assert summary.judgments == 12


def test_a_ready_backend_is_not_called_on_rerun(tmp_path):
    data = write_items(tmp_path / "d.jsonl", 4)
    cfg = job(tmp_path, data)
    backend = ScriptedBackend(verdict)
    run_job(cfg, backend=backend, progress=False)
    assert len(backend.calls) == 4
    run_job(cfg, backend=backend, progress=False)
    assert len(backend.calls) == 4


# ----------------------------------------------------------------------------------------------
# Deduplication, formats, limits


def test_duplicate_items_are_judged_once(tmp_path):
    data = write_items(tmp_path / "d.jsonl", 3)
    lines = data.read_text(encoding="utf-8")
    data.write_text(lines + lines.splitlines(keepends=True)[0] + lines, encoding="utf-8")  # 7 rows, 3 distinct
    rec = Recorder()
    summary = run(job(tmp_path, data), rec)
    assert len(rec.prompts) == 3
    final = read_judgments(job_paths(summary.output).output)
    assert sorted(j.item_id for j in final) == ["item-0", "item-1", "item-2"]
    assert summary.items == 7 and summary.judgments == 3


def _rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_items_with_the_same_texts_are_judged_once_and_each_gets_its_judgment(tmp_path):
    same = {"prompt": "What is 2 + 2?", "response": "4."}
    data = _rows(tmp_path / "d.jsonl", [{"id": "a", **same}, {"id": "other", "prompt": "Hi?", "response": "Hello."},
                                        {"id": "b", **same}, {"id": "a", **same}, {"id": "c", **same}])  # fmt: skip
    rec = Recorder()
    summary = run(job(tmp_path, data, batch_size=2), rec)
    assert len(rec.prompts) == 2  # one request per distinct text
    final = read_judgments(job_paths(summary.output).output)
    assert sorted(j.item_id for j in final) == ["a", "b", "c", "other"]  # the repeated row "a" once
    by_id = {j.item_id: j for j in final}
    assert by_id["a"].key == by_id["b"].key == by_id["c"].key
    assert by_id["a"].scores == by_id["b"].scores == by_id["c"].scores
    assert summary.new_judgments == 2 and summary.cached == 2 and summary.judgments == 4

    # A rerun has nothing to do; a new item with the same texts is served from the cache.
    with data.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": "d", **same}) + "\n")
    again = run(job(tmp_path, data, batch_size=2), Recorder(lambda p, s: pytest.fail("judged again")))
    assert again.resumed == 5 and again.cached == 1 and again.new_judgments == 0
    final = read_judgments(job_paths(summary.output).output)
    assert sorted(j.item_id for j in final) == ["a", "b", "c", "d", "other"]


def test_a_crash_between_items_with_the_same_texts_loses_none(tmp_path):
    same = {"prompt": "Same?", "response": "Same."}
    rows = [{"id": f"u{i}", "prompt": f"q{i}", "response": f"r{i}"} for i in range(4)]
    data = _rows(tmp_path / "d.jsonl", [{"id": "x", **same}, *rows, {"id": "y", **same}])
    cfg = job(tmp_path, data, batch_size=1)

    def crash(n: int) -> None:
        if n == 2:
            raise Crash

    with pytest.raises(Crash):
        run(cfg, Recorder(), on_batch=crash)
    rec = Recorder()
    summary = run(cfg, rec)
    final = read_judgments(job_paths(summary.output).output)
    assert sorted(j.item_id for j in final) == ["u0", "u1", "u2", "u3", "x", "y"]
    assert summary.cached == 1 and len(rec.prompts) == 3  # y from x's judgment; u1..u3 judged now


def test_mirrored_pairs_are_judged_in_their_own_terms(tmp_path):
    # p2 is p1 with the responses swapped: p1 shown as (A, B) is the same prompt as p2 shown as
    # (B, A), but "the first shown wins" means A for p1 and B for p2.
    data = _rows(tmp_path / "d.jsonl", [
        {"id": "p1", "prompt": "3 * 4?", "response_a": "12.", "response_b": "7."},
        {"id": "p2", "prompt": "3 * 4?", "response_a": "7.", "response_b": "12."},
    ])  # fmt: skip

    def right(prompt, params) -> str:  # picks the shown response that says 12
        user = prompt[-1].content
        return json.dumps({"winner": "A" if user.index("12.") < user.index("7.") else "B"})

    from judge.analysis._verdicts import read_pair_verdicts, verdicts_path

    summary = run(job(tmp_path, data, rubrics=["instruction_following"]), Recorder(right))
    verdicts = {v.item_id: v.winner for v in read_pair_verdicts(verdicts_path(summary.output))}
    assert verdicts == {"p1": "A", "p2": "B"}
    assert summary.new_judgments == 4


def test_parquet_input(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = {
        "id": ["a", None, "c"],
        "prompt": ["q1", "q2", "q3"],
        "response": ["r1", "r2", None],
        "reference": ["x1", "x2", "x3"],
    }
    data = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pydict(rows), data)
    rec = Recorder()
    summary = run(job(tmp_path, data, rubrics=["factual_consistency"]), rec)
    paths = job_paths(summary.output)
    final = read_judgments(paths.output)
    assert len(final) == 2 and final[0].item_id == "a" and final[1].item_id.startswith("item-")
    assert all(j.kind == "reference" and set(j.scores) == {"consistency", "completeness"} for j in final)
    (reject,) = [json.loads(line) for line in paths.rejects.read_text(encoding="utf-8").splitlines()]
    assert reject["line"] == 3 and "needs field(s) ['response']" in reject["error"]


def test_limit_judges_only_the_first_valid_items(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "bad"}\n', encoding="utf-8")
    write_items(data, 6)
    rec = Recorder()
    summary = run(job(tmp_path, data, limit=4), rec)
    ids = [j.item_id for j in read_judgments(job_paths(summary.output).output)]
    assert ids == ["item-0", "item-1", "item-2", "item-3"]
    assert len(rec.prompts) == 4 and summary.items == 4 and summary.rejected == 1


def test_pairwise_jobs_judge_both_orders(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(
        "".join(
            json.dumps({"id": f"p{i}", "prompt": f"q{i}", "response_a": f"a{i}", "response_b": f"b{i}"}) + "\n"
            for i in range(4)
        ),
        encoding="utf-8",
    )
    rec = Recorder(lambda prompt, params: '{"winner": "A"}')  # always the first position
    summary = run(job(tmp_path, data, rubrics=["instruction_following"]), rec)
    final = read_judgments(job_paths(summary.output).output)
    assert len(final) == 8
    for j in final:
        assert j.winner == ("A" if j.order == "AB" else "B"), "position A in BA is the item's response_b"
    assert summary.rubrics["instruction_following"].winners == {"A": 4, "B": 4}


# ----------------------------------------------------------------------------------------------
# Summary


def test_summary_json(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"id": "bad"}\n', encoding="utf-8")
    write_items(data, 4)

    def answers(prompt, params):
        content = prompt[-1].content
        if "Answer 3." in content:
            return Completion(text="no idea", prompt_tokens=50, completion_tokens=3, finish_reason="stop")
        score = 2 if "Answer 0." in content or "Answer 1." in content else 4
        return Completion(text=json.dumps({"helpfulness": score}), prompt_tokens=100, completion_tokens=5)

    summary = run(job(tmp_path, data), Recorder(answers))
    paths = job_paths(summary.output)
    written = json.loads(paths.summary.read_text(encoding="utf-8"))
    assert written == json.loads(json.dumps(summary.to_dict()))
    assert written["output"] == str(paths.output)
    assert (written["rows"], written["items"], written["rejected"]) == (5, 4, 1)
    assert (written["judgments"], written["new_judgments"], written["resumed"], written["unscored"]) == (4, 4, 0, 1)
    assert (written["prompt_tokens"], written["completion_tokens"]) == (350, 18)
    helpfulness = written["rubrics"]["helpfulness"]
    assert helpfulness["mode"] == "pointwise"
    assert (helpfulness["scored"], helpfulness["unscored"]) == (3, 1)
    assert helpfulness["criteria"]["helpfulness"] == {"mean": pytest.approx(8 / 3, abs=1e-4), "n": 3}
    assert written["judge"]["backend"] == "scripted"
    for field in ("wall_s", "judge_s", "judgments_per_s", "prompt_tokens_per_s"):
        assert written[field] >= 0
    table = summary.table()
    assert "items 4" in table and "rejected rows 1" in table and "unscored 1" in table
    assert "helpfulness" in table and "2.67" in table

    unscored = [j for j in read_judgments(paths.output) if j.status == "unscored"]
    assert len(unscored) == 1 and unscored[0].raw_output == "no idea" and unscored[0].scores is None


def test_every_judgment_is_traceable(tmp_path):
    from judge.inputs._prompts import prompt_hash, render_messages
    from judge.core._records import Item
    from judge.inputs._rubric import resolve_rubric

    data = write_items(tmp_path / "d.jsonl", 3)
    summary = run(job(tmp_path, data, rubrics=["honesty"]), Recorder())
    rubric = resolve_rubric("honesty")
    items = {row["id"]: Item.model_validate(row) for row in map(json.loads, data.read_text().splitlines())}
    for j in read_judgments(job_paths(summary.output).output):
        assert (j.rubric.id, j.rubric.version, j.rubric.hash) == ("honesty", 1, rubric.content_hash)
        assert j.prompt_hash == prompt_hash(render_messages(rubric, items[j.item_id]))
        assert j.judge.backend == "scripted" and j.judge.model_hash
        assert j.sampling.json_schema is not None and j.sampling.temperature == 0.0


def test_judge_identity_uses_the_backends_default_dtype(tmp_path):
    """A config that leaves dtype unset names the same judge as one that spells out the default."""
    from judge.backends import backend_identity

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}", encoding="utf-8")
    for backend in ("hf", "vllm"):
        assert backend_identity(backend, str(model), {}) == backend_identity(backend, str(model), {"dtype": "bfloat16"})
        assert backend_identity(backend, str(model), {}) != backend_identity(backend, str(model), {"dtype": "float32"})
    assert backend_identity("hf", str(model), {}) != backend_identity("vllm", str(model), {})


# ----------------------------------------------------------------------------------------------
# Defects found by trying the engine as a user would


def test_a_rerun_of_a_finished_job_reports_the_whole_output_not_zeros(tmp_path):
    data = write_items(tmp_path / "d.jsonl", 5)
    cfg = job(tmp_path, data)
    first = run(cfg, ScriptedBackend(verdict))
    again = run(cfg, ScriptedBackend(verdict))
    written = json.loads(job_paths(cfg.output).summary.read_text())
    assert (again.judgments, again.resumed, again.new_judgments) == (5, 5, 0)
    assert again.prompt_tokens == first.prompt_tokens > 0  # the output's tokens, not this run's
    assert again.new_prompt_tokens == 0 and again.judge is not None and again.judge.backend == "scripted"
    assert again.rubrics["helpfulness"].scored == 5
    assert written["judgments"] == 5 and written["judge"]["backend"] == "scripted"


@pytest.mark.parametrize(
    "judge, error",
    [
        ({"backend": "nope"}, "unknown backend 'nope'"),
        ({"backend": "scripted", "options": {"bogus": 1}}, r"backend 'scripted' has no option\(s\) \['bogus'\]"),
    ],
)
def test_a_bad_backend_fails_before_the_data_is_read_or_a_file_is_made(tmp_path, judge, error):
    cfg = job(tmp_path, tmp_path / "absent.jsonl", judge=judge)  # the data would fail too: later
    with pytest.raises(ConfigError, match=error):
        run_job(cfg, progress=False)
    assert not (tmp_path / "out").exists()  # no .part, no cache, no rejects


def test_the_progress_bar_counts_valid_items(tmp_path, capsys):
    data = write_items(tmp_path / "d.jsonl", 12)
    with data.open("a", encoding="utf-8") as fh:
        fh.write('{"id": "x", "prompt": "no response"}\n{broken\n["list"]\n')
    cfg = job(tmp_path, data, rubrics=["helpfulness", "honesty"])  # two requests per item
    run_job(cfg, backend=ScriptedBackend(verdict), progress=True)
    bar = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert " 12/12 " in bar and "item" in bar, bar  # 15 rows, 3 rejects, 24 requests


def test_a_prompt_too_long_is_a_reject_and_a_backend_error_fails_only_its_request(tmp_path):
    data = write_items(tmp_path / "d.jsonl", 6)
    cfg = job(tmp_path, data)

    def flaky(prompt, params):
        text = prompt[-1].content
        if "Answer 1." in text:
            return Completion(text="", error="prompt needs 5000 tokens, the context holds 4096", error_kind="too_long")
        if "Answer 2." in text:
            raise RuntimeError("engine exploded on this prompt")  # the whole batch raises
        return verdict(prompt, params)

    summary = run_job(cfg, backend=ScriptedBackend(flaky), progress=False)
    assert (summary.skipped, summary.failed, summary.judgments) == (1, 1, 5)
    rejects = [json.loads(x) for x in job_paths(cfg.output).rejects.read_text().splitlines()]
    assert rejects == [{"item_id": "item-1", "key": rejects[0]["key"],
                        "error": "too long for the model: prompt needs 5000 tokens, the context holds 4096"}]
    by_id = {j.item_id: j for j in read_judgments(cfg.output)}
    assert "item-1" not in by_id
    failed = by_id["item-2"]
    assert failed.status == "unscored" and "engine exploded on this prompt" in failed.error
    assert failed.error.startswith("backend error: RuntimeError")
    assert all(by_id[i].status == "scored" for i in ("item-0", "item-3", "item-4", "item-5"))  # its batch-mates

    # The failure is not cached: the rerun retries it (and only it), and its line is replaced.
    healed = ScriptedBackend(verdict)
    again = run_job(cfg, backend=healed, progress=False)
    assert len(healed.calls) == 2  # item-2 again, and item-1 (a reject is no judgment: asked again)
    by_id = {j.item_id: j for j in read_judgments(cfg.output)}
    assert [j.item_id for j in read_judgments(cfg.output)].count("item-2") == 1
    assert by_id["item-2"].status == "scored" and again.failed == 0 and again.judgments == 6
