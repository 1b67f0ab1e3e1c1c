"""Candidate generation on the Ray pool: the same runner, the same files, the same seeded texts.

The policy is the tiny Llama on the transformers backend inside two Ray actors (a private local
Ray on 127.0.0.1, started and stopped by the job), so this runs in well under a minute.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from judge.core._config import ClusterConfig, GenerateConfig
from rlaif import generate_candidates
from rlaif_helpers import write_jsonl

pytestmark = pytest.mark.ray

TIMING = {"created_at", "latency_s"}


def _content(path: Path) -> dict[str, dict]:
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    return {r["id"]: {k: v for k, v in r.items() if k not in TIMING} for r in rows}


def test_generation_on_a_ray_pool_writes_what_the_local_run_writes(tmp_path, tiny_model):
    data = write_jsonl(tmp_path / "prompts.jsonl", [{"id": f"p{i}", "prompt": f"Name a colour, {i}."} for i in range(4)])

    def cfg(out: str) -> GenerateConfig:
        return GenerateConfig(
            data=data, output=tmp_path / out / "candidates.jsonl", k=3, batch_size=2,
            policy={"backend": "hf", "model": str(tiny_model), "options": {"dtype": "float32"}},
            sampling={"temperature": 0.8, "max_tokens": 10, "seed": 5},
        )  # fmt: skip

    local = generate_candidates(cfg("local"), progress=False)
    pool = ClusterConfig(enabled=True, workers=2, num_cpus=1, startup_timeout_s=300)
    ray = generate_candidates(cfg("ray"), progress=False, cluster=pool)
    assert local.candidates == ray.candidates == 12
    assert ray.executor is not None and ray.executor.executor == "ray" and len(ray.executor.workers) == 2
    assert sum(w.judgments for w in ray.executor.workers) == 12
    # Batches complete in any order on two workers; each candidate is the same record.
    assert _content(cfg("ray").output) == _content(cfg("local").output)
    again = generate_candidates(cfg("ray"), progress=False, cluster=pool)
    assert (again.new, again.resumed, again.candidates) == (0, 12, 12)  # resumed: no worker was asked
