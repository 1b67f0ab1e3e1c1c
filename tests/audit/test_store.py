"""The audit store: migrations, append-only history, concurrent writers, tokens, queue and exchange formats."""

from __future__ import annotations

import json
import multiprocessing as mp
import sqlite3
from pathlib import Path

import pytest

from judge.audit import MIGRATIONS, SCHEMA_VERSION, AuditStore, AuditStoreError, HumanLabel, Override, SamplingRun
from audit_helpers import make_sample


def _label(sid: str, reviewer: str = "alice", value="a", **kw) -> HumanLabel:
    return HumanLabel(sample_id=sid, reviewer=reviewer, phase=kw.pop("phase", "before_reveal"), value=value,
                      shown_order=kw.pop("shown_order", "AB"), **kw)


def test_a_v1_file_is_migrated(tmp_path: Path):
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0] + "UPDATE schema_version SET version = 1;")
    s = make_sample(0)
    lab = _label(s.sample_id)
    conn.execute("INSERT INTO samples (sample_id, run_id, record) VALUES (?, ?, ?)", (s.sample_id, s.run_id, s.model_dump_json()))
    conn.execute("INSERT INTO labels (label_id, sample_id, reviewer, phase, record) VALUES (?, ?, ?, ?, ?)",
                 (lab.label_id, lab.sample_id, lab.reviewer, lab.phase, lab.model_dump_json()))
    conn.commit()
    conn.close()
    store = AuditStore(path)
    assert store.schema_version() == SCHEMA_VERSION > 1
    assert store.sample(s.sample_id) == s
    assert store.labels() == [lab]
    # What later versions added works on the migrated file, including the append-only triggers.
    token = store.add_reviewer("bob")
    assert store.reviewer_for_token(token) == "bob"
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        sqlite3.connect(path).execute("DELETE FROM labels")


def test_a_newer_file_is_refused(tmp_path: Path):
    path = tmp_path / "new.sqlite"
    AuditStore(path)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE schema_version SET version = 99")
    conn.commit()
    with pytest.raises(AuditStoreError, match="newer"):
        AuditStore(path)


def test_history_is_append_only(tmp_path: Path):
    store = AuditStore(tmp_path / "a.sqlite")
    s = make_sample(0)
    store.add_samples([s])
    first = _label(s.sample_id, value="a")
    store.add_label(first)
    change = _label(s.sample_id, value="b", phase="after_reveal")
    store.add_label(change)
    again = _label(s.sample_id, value="tie")  # a changed mind before the reveal: a new row
    store.add_label(again)
    assert [x.value for x in store.labels()] == ["a", "b", "tie"]
    assert {(x.phase, x.value) for x in store.current_labels()} == {("before_reveal", "tie"), ("after_reveal", "b")}
    store.add_label(HumanLabel(sample_id=s.sample_id, reviewer="alice", phase="before_reveal", undoes=again.label_id))
    assert [x.value for x in store.current_labels(phase="before_reveal")] == ["a"]
    assert len(store.labels()) == 4  # the undo is a row too; nothing was removed
    store.add_override(Override(reviewer="carol", reason="pilot", scope="gate:x"))
    store.add_reviewer("dave")
    conn = sqlite3.connect(store.path)
    for sql in ("UPDATE labels SET record = '{}'", "DELETE FROM labels", "DELETE FROM overrides", "UPDATE reviewers SET name = 'x'"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute(sql)
    conn.close()
    with pytest.raises(AuditStoreError, match="already stored"):
        store.add_label(first)
    with pytest.raises(AuditStoreError, match="no sample"):
        store.add_label(_label("nope"))
    with pytest.raises(AuditStoreError, match="not a label of this sample"):
        store.add_label(HumanLabel(sample_id=s.sample_id, reviewer="bob", phase="before_reveal", undoes=first.label_id))


def _writer(path: str, reviewer: str, n: int) -> None:
    store = AuditStore(path, timeout=120)
    for i in range(n):
        store.add_label(HumanLabel(sample_id=f"s-run-0-{i % 20}", reviewer=reviewer, phase="before_reveal",
                                   value="a" if i % 2 else "b", shown_order="AB", note=f"{reviewer} {i}"))


def test_two_writer_processes_lose_nothing(tmp_path: Path):
    path = tmp_path / "a.sqlite"
    AuditStore(path).add_samples([make_sample(i) for i in range(20)])
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), name, 150)) for name in ("alice", "bob")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    labels = AuditStore(path).labels()
    assert len(labels) == 300
    for name in ("alice", "bob"):
        assert sorted(x.note for x in labels if x.reviewer == name) == sorted(f"{name} {i}" for i in range(150))


def test_samples_are_idempotent_and_tokens_are_hashed(tmp_path: Path):
    store = AuditStore(tmp_path / "a.sqlite")
    assert store.add_samples([make_sample(i) for i in range(3)]) == 3
    assert store.add_samples([make_sample(i) for i in range(4)]) == 1
    assert [s.sample_id for s in store.samples()] == [f"s-run-0-{i}" for i in range(4)]
    token = store.add_reviewer("alice")
    assert len(token) >= 40
    assert store.reviewer_for_token(token) == "alice"
    assert store.reviewer_for_token(token + "x") is None and store.reviewer_for_token("") is None
    assert token.encode() not in store.path.read_bytes()  # only its hash is stored


def test_queue_honours_overlap_deterministically(tmp_path: Path):
    store = AuditStore(tmp_path / "a.sqlite")
    store.add_samples([make_sample(i) for i in range(40)])
    doubles = {s.sample_id for s in store.samples() if store.reviews_wanted(s.sample_id, 0.5) == 2}
    assert 8 <= len(doubles) <= 32
    seen: dict[str, list[str]] = {"alice": [], "bob": []}
    while True:
        progressed = False
        for who in ("alice", "bob"):
            nxt = store.next_for(who, overlap=0.5)
            assert nxt == store.next_for(who, overlap=0.5)  # deterministic
            if nxt is not None:
                seen[who].append(nxt.sample_id)
                store.add_label(_label(nxt.sample_id, reviewer=who))
                progressed = True
        if not progressed:
            break
    both = set(seen["alice"]) & set(seen["bob"])
    assert both == doubles  # exactly the overlap share went to two reviewers
    assert set(seen["alice"]) | set(seen["bob"]) == {s.sample_id for s in store.samples()}
    done, total = store.progress("alice", overlap=0.5)
    assert done == total == len(seen["alice"])


def test_jsonl_and_csv_round_trip(tmp_path: Path):
    store = AuditStore(tmp_path / "a.sqlite")
    samples = [make_sample(i) for i in range(3)] + [make_sample(9, kind="pointwise", scores={"helpful": 5})]
    store.add_samples(samples)
    store.add_label(_label(samples[0].sample_id, note='comma, "quote"\nnewline'))
    store.add_label(_label(samples[3].sample_id, value={"helpful": 3}, shown_order=None))
    store.add_label(HumanLabel(sample_id=samples[1].sample_id, reviewer="bob", phase="before_reveal", skipped=True))
    store.add_override(Override(reviewer="carol", reason="pilot", scope="gate:x"))
    store.add_run(SamplingRun(run_id="run-0", seed=0, config={"budget": 4}, population=10, cells={}))
    store.export_jsonl(tmp_path / "all.jsonl")
    store.export_csv(tmp_path / "labels.csv")
    copy = AuditStore(tmp_path / "b.sqlite")
    assert copy.import_jsonl(tmp_path / "all.jsonl") == 4 + 3 + 1 + 1
    assert copy.import_jsonl(tmp_path / "all.jsonl") == 0
    assert copy.samples() == store.samples() and copy.labels() == store.labels() and copy.overrides() == store.overrides()
    assert copy.runs() == store.runs()
    third = AuditStore(tmp_path / "c.sqlite")
    third.add_samples(samples)
    assert third.import_csv(tmp_path / "labels.csv") == 3
    assert third.labels() == store.labels()


def test_label_studio_round_trip(tmp_path: Path):
    store = AuditStore(tmp_path / "a.sqlite")
    pair, point = make_sample(0), make_sample(1, kind="pointwise")
    store.add_samples([pair, point])
    assert store.export_label_studio(tmp_path / "tasks.json") == 2
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    assert all("judge_output" not in t["data"] and "winner" not in t["data"] for t in tasks)  # blind there too
    config = (tmp_path / "tasks.xml").read_text()
    assert '<Choices name="winner"' in config and '<Choices name="helpful"' in config
    # What Label Studio exports after two annotators labelled: ids, data and annotations.
    exported = []
    for n, t in enumerate(tasks, 1):
        choice = ("b" if t["data"]["kind"] == "pairwise" else "5")
        name = "winner" if t["data"]["kind"] == "pairwise" else "helpful"
        exported.append({"id": n, "data": t["data"], "annotations": [
            {"id": 10 * n, "completed_by": {"id": 1, "email": "ann@example.org"}, "created_at": "2026-01-01T00:00:00Z",
             "result": [{"from_name": name, "to_name": "prompt", "type": "choices", "value": {"choices": [choice]}}]},
            {"id": 10 * n + 1, "completed_by": 2, "result": [], "was_cancelled": True},
        ]})
    (tmp_path / "export.json").write_text(json.dumps(exported))
    assert store.import_label_studio(tmp_path / "export.json") == 2
    assert store.import_label_studio(tmp_path / "export.json") == 0
    got = {x.sample_id: x for x in store.labels()}
    assert got[pair.sample_id].created_at == "2026-01-01T00:00:00Z"
    assert got[pair.sample_id].value == "b" and got[point.sample_id].value == {"helpful": 5}
    assert {x.reviewer for x in got.values()} == {"label-studio:ann@example.org"}
    assert all(x.phase == "before_reveal" and x.source == "label-studio" for x in got.values())
