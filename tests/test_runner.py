"""The runner is generic: a non-judge task (k sampled candidates per prompt) runs on the same ledger,
cache, resume and executor as judging."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from judge.backends import ScriptedBackend
from judge.core._records import Item, JudgeInfo, Message, SamplingParams, stable_hash
from judge.runner import JudgmentCache, LocalExecutor, OutputLedger, Rejects, Runner, progress_bar


class GenRequest(BaseModel):
    """One candidate to generate: messages + sampling + key (what any runner request is)."""

    model_config = ConfigDict(extra="forbid")
    key: str
    item_id: str
    messages: list[Message]
    sampling: SamplingParams
    index: int


class Generation(BaseModel):
    """A generated text with its provenance."""

    model_config = ConfigDict(extra="forbid")
    key: str
    item_id: str
    index: int
    text: str
    model: str
    seed: int


class GenerateTask:
    """k candidates per prompt, each with its own seed."""

    record_type = Generation

    def __init__(self, k: int) -> None:
        self.k = k

    def requests(self, item: Item) -> list[GenRequest]:
        out = []
        for i in range(self.k):
            sampling = SamplingParams(temperature=0.8, seed=i, max_tokens=32)
            messages = [Message(role="user", content=item.prompt)]
            key = stable_hash(["gen", [m.model_dump() for m in messages], sampling.model_dump()])
            out.append(GenRequest(key=key, item_id=item.id, messages=messages, sampling=sampling, index=i))
        return out

    def record(self, request: GenRequest, completion, info: JudgeInfo, latency_s: float) -> Generation:
        return Generation(
            key=request.key, item_id=request.item_id, index=request.index, text=completion.text,
            model=info.model, seed=request.sampling.seed,
        )


class Crash(RuntimeError):
    pass


def policy(prompt, params) -> str:
    return f"candidate {params.seed} for {prompt[-1].content}"


def run(tmp: Path, items: list[Item], backend: ScriptedBackend, on_batch=None):
    part = tmp / "gen.jsonl"
    ledger, cache = OutputLedger(tmp / "gen.ledger.sqlite"), JudgmentCache(tmp / "gen.cache.sqlite")
    ledger.sync(part, on_lines=cache.put_many)
    rejects = Rejects(tmp / "gen.rejects.jsonl")
    bar = progress_bar(len(items), False)
    runner = Runner(GenerateTask(3), LocalExecutor(lambda: backend, owns_backend=False), part, ledger, cache,
                    rejects, 4, bar, on_batch)
    try:
        return runner.run(items)
    finally:
        rejects.commit()
        ledger.close()
        cache.close()


def records(tmp: Path) -> list[dict]:
    return [json.loads(x) for x in (tmp / "gen.jsonl").read_text().splitlines()]


def test_a_generation_task_resumes_and_writes_each_candidate_once(tmp_path):
    items = [Item(id=f"p{i}", prompt=f"Write a haiku about {i}.") for i in range(5)]  # 15 candidates

    def crash_after_two(n):
        if n == 2:
            raise Crash()

    first = ScriptedBackend(policy)
    with pytest.raises(Crash):
        run(tmp_path, items, first, crash_after_two)
    assert len(records(tmp_path)) == 8 and len(first.calls) == 8  # two batches of 4 were written

    second = ScriptedBackend(policy)
    counts = run(tmp_path, items, second)
    assert (counts.new, counts.resumed) == (7, 8) and len(second.calls) == 7  # only the missing ones
    got = records(tmp_path)
    assert len(got) == len({(r["key"], r["item_id"]) for r in got}) == 15
    assert {(r["item_id"], r["index"]) for r in got} == {(f"p{i}", k) for i in range(5) for k in range(3)}
    assert all(r["text"] == f"candidate {r['seed']} for Write a haiku about {r['item_id'][1:]}." for r in got)

    # A prompt that comes again under another id is generated once (cache), written for its own id.
    third = ScriptedBackend(policy)
    counts = run(tmp_path, [*items, Item(id="again", prompt="Write a haiku about 0.")], third)
    assert third.calls == [] and counts.cached == 3
    assert sorted(r["index"] for r in records(tmp_path) if r["item_id"] == "again") == [0, 1, 2]
