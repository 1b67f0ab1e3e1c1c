"""The judgment cache and output ledger, alone and under the engine (scripted backend)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from judge.backends import ScriptedBackend
from judge.runner._cache import JudgmentCache, OutputLedger, output_slot
from judge.core._config import JobConfig
from judge.runner._engine import job_paths, run_job

VERDICT = '{"helpfulness": 4, "rationale": "fine"}'


def _line(key: str, text: str = "x", item: str = "i") -> str:
    return json.dumps({"key": key, "item_id": item, "raw_output": text})


def S(key: str, item: str = "i") -> str:
    """The ledger's slot of the judgment of request ``key`` for ``item``."""
    return output_slot(key, item)


def _write(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


# ----------------------------------------------------------------------------------------------
# JudgmentCache


def test_cache_is_content_addressed_and_keeps_the_first_judgment(tmp_path):
    with JudgmentCache(tmp_path / "c.sqlite") as cache:
        cache.put_many([("k1", "one"), ("k2", "two")])
        cache.put_many([("k1", "other")])
        assert cache.get("k1") == "one"
        assert cache.get("nope") is None
        assert "k2" in cache and "k3" not in cache
        assert len(cache) == 2
        assert sorted(cache.keys()) == ["k1", "k2"]
    mode = sqlite3.connect(tmp_path / "c.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_cache_is_shared_between_connections(tmp_path):
    a = JudgmentCache(tmp_path / "c.sqlite")
    b = JudgmentCache(tmp_path / "c.sqlite")
    a.put_many([("k", "v")])
    assert b.get("k") == "v"
    a.close()
    b.close()


# ----------------------------------------------------------------------------------------------
# OutputLedger


def test_ledger_reads_only_what_was_appended_since_the_last_run(tmp_path):
    out = tmp_path / "out.jsonl"
    _write(out, [_line("a"), _line("b")])
    seen: list[str] = []
    with OutputLedger(tmp_path / "l.sqlite") as ledger:
        assert ledger.sync(out, on_lines=lambda chunk: seen.extend(k for k, _ in chunk)) == 2
        assert ledger.run == 1 and ledger.lookup(S("a")) == 0 and ledger.lookup(S("zz")) is None
    with out.open("a", encoding="utf-8") as fh:
        fh.write(_line("c") + "\n")
    seen.clear()
    with OutputLedger(tmp_path / "l.sqlite") as ledger:
        assert ledger.sync(out, on_lines=lambda chunk: seen.extend(k for k, _ in chunk)) == 1
        assert seen == ["c"]
        assert ledger.run == 2 and {"a", "b", "c"} <= {k for k in "abc" if S(k) in ledger}


def test_ledger_record_then_resume_reads_nothing(tmp_path):
    out = tmp_path / "out.jsonl"
    with OutputLedger(tmp_path / "l.sqlite") as ledger:
        ledger.sync(out)
        with out.open("ab") as fh:
            last = (_line("a") + "\n").encode()
            fh.write(last)
            size = fh.tell()
        ledger.record([S("a")], size, last)
        assert ledger.lookup(S("a")) == ledger.run
    with OutputLedger(tmp_path / "l.sqlite") as ledger:
        assert ledger.sync(out) == 0
        assert ledger.lookup(S("a")) == 1 < ledger.run


def test_ledger_cuts_a_torn_last_line(tmp_path):
    out = tmp_path / "out.jsonl"
    _write(out, [_line("a"), _line("b")])
    with out.open("a", encoding="utf-8") as fh:
        fh.write('{"key": "c", "raw_ou')  # a crash mid-write
    with OutputLedger(tmp_path / "l.sqlite") as ledger:
        assert ledger.sync(out) == 2
        assert S("c") not in ledger
    assert out.read_text(encoding="utf-8").endswith(_line("b") + "\n")


def test_ledger_rebuilds_when_the_file_was_replaced_or_deleted(tmp_path):
    out = tmp_path / "out.jsonl"
    _write(out, [_line("a"), _line("b")])
    with OutputLedger(tmp_path / "l.sqlite") as ledger:
        ledger.sync(out)
    _write(out, [_line("x"), _line("y"), _line("z")])  # same length or longer, other content
    with OutputLedger(tmp_path / "l.sqlite") as ledger:
        assert ledger.sync(out) == 3
        assert S("a") not in ledger and S("x") in ledger and len(ledger) == 3
    out.unlink()
    with OutputLedger(tmp_path / "l.sqlite") as ledger:
        assert ledger.sync(out) == 0
        assert len(ledger) == 0


# ----------------------------------------------------------------------------------------------
# Under the engine


def _job(tmp_path: Path, n: int = 12, duplicates: int = 0, **kw) -> JobConfig:
    rows = [{"id": f"i{i}", "prompt": f"question {i}", "response": f"answer {i}"} for i in range(n)]
    rows += rows[:duplicates]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return JobConfig(data=data, output=tmp_path / "run" / "judgments.jsonl", batch_size=3, **kw)


def _keys(path: Path) -> list[str]:
    return [json.loads(line)["key"] for line in path.read_text(encoding="utf-8").splitlines()]


class _Boom(Exception):
    pass


def test_crashed_job_resumes_with_only_the_missing_work(tmp_path):
    cfg = _job(tmp_path, n=12, duplicates=2)
    backend = ScriptedBackend(lambda p, s: VERDICT)

    def crash(n: int) -> None:
        if n == 2:
            raise _Boom

    with pytest.raises(_Boom):
        run_job(cfg, backend=backend, progress=False, on_batch=crash)
    written = len(_keys(job_paths(cfg.output).part))
    assert written == 6 and len(backend.calls) == 6
    summary = run_job(cfg, backend=backend, progress=False)
    keys = _keys(cfg.output)
    assert len(keys) == len(set(keys)) == 12
    assert len(backend.calls) == 12  # nothing judged twice
    assert summary.new_judgments == 6 and summary.resumed == 6 + 2  # the duplicates of written items
    assert job_paths(cfg.output).cache.exists()


def test_duplicate_requests_in_one_run_are_judged_once(tmp_path):
    cfg = _job(tmp_path, n=5, duplicates=5)
    backend = ScriptedBackend(lambda p, s: VERDICT)
    summary = run_job(cfg, backend=backend, progress=False)
    assert len(backend.calls) == 5 and summary.new_judgments == 5 and summary.resumed == 0
    assert len(_keys(cfg.output)) == 5


def _no_judge(prompt, params):
    raise AssertionError("the judge must not be called")


def test_deleted_output_is_rebuilt_from_the_cache_without_a_judge(tmp_path, model_dir):
    # The configured (not a ready) backend: the job's identity comes from the config, so nothing
    # is created unless a request has to be judged.
    cfg = _job(tmp_path, judge={"backend": "scripted", "options": {"responder": lambda p, s: VERDICT}})
    first = run_job(cfg, progress=False)
    before = {json.loads(line)["key"]: line for line in cfg.output.read_text().splitlines()}
    cfg.output.unlink()
    cfg = cfg.model_copy(update={"judge": cfg.judge.model_copy(update={"options": {"responder": _no_judge}})})
    again = run_job(cfg, progress=False)
    after = {json.loads(line)["key"]: line for line in cfg.output.read_text().splitlines()}
    assert after == before
    assert again.cached == first.new_judgments == 12 and again.new_judgments == 0
    assert again.judge.backend == "scripted"


def test_a_shared_cache_serves_another_job(tmp_path):
    shared = tmp_path / "shared"
    cfg = _job(tmp_path, cache_dir=shared)
    run_job(cfg, backend=ScriptedBackend(lambda p, s: VERDICT), progress=False)
    assert (shared / "judgments.sqlite").exists()
    other = cfg.model_copy(update={"output": tmp_path / "other" / "judgments.jsonl"})
    backend = ScriptedBackend(lambda p, s: VERDICT)
    summary = run_job(other, backend=backend, progress=False)
    assert backend.calls == [] and summary.cached == 12
    assert sorted(_keys(other.output)) == sorted(_keys(cfg.output))


def test_a_deleted_cache_is_refilled_from_the_output(tmp_path):
    cfg = _job(tmp_path)
    run_job(cfg, backend=ScriptedBackend(lambda p, s: VERDICT), progress=False)
    paths = job_paths(cfg.output)
    for suffix in ("", "-wal", "-shm"):
        Path(str(paths.cache) + suffix).unlink(missing_ok=True)
    backend = ScriptedBackend(lambda p, s: VERDICT)
    summary = run_job(cfg, backend=backend, progress=False)
    assert backend.calls == [] and summary.resumed == 12
    with JudgmentCache(paths.cache) as cache:
        assert len(cache) == 12
