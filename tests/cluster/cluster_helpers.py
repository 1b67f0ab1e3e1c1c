"""Data and comparisons shared by the Ray tests."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

# Greedy fp32: the same batch gives the same text in every process (bf16 can flip near-ties).
VLLM_OPTIONS = {"dtype": "float32", "max_model_len": 2048, "enforce_eager": True, "kv_cache_gib": 1}

PROMPTS = [
    ("What is the capital of France?", "Paris is the capital of France."),
    ("What is 2 + 2?", "2 + 2 = 5."),
    ("Name a primary colour.", "Blue is a primary colour."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("Translate 'bonjour' to English.", "It means 'goodbye'."),
    ("What is the boiling point of water at sea level?", "100 degrees Celsius."),
    ("Who wrote Hamlet?", "Hamlet was written by William Shakespeare."),
    ("What is the largest planet in the solar system?", "The Moon."),
]


def write_items(path: Path, n: int) -> Path:
    """``n`` pointwise items: the prompts above, with distinct ids and slightly varied responses."""
    rows = []
    for i in range(n):
        prompt, response = PROMPTS[i % len(PROMPTS)]
        rows.append({"id": f"item-{i:03d}", "prompt": prompt, "response": f"{response} (answer {i})"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def judgment_set(path: Path) -> set[tuple]:
    """What must not depend on where a judgment ran: key, raw output, status, scores."""
    out = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        j = json.loads(line)
        out.add((j["key"], j["raw_output"], j["status"], json.dumps(j["scores"], sort_keys=True)))
    return out


N_ITEMS = 16
BATCH = 2


def job_dict(data: Path, output: Path, cluster: bool) -> dict:
    """The job every end-to-end test runs: vLLM, greedy, small batches so work is spread out."""
    job = {
        "data": str(data),
        "output": str(output),
        "rubrics": ["helpfulness"],
        "judge": {"backend": "vllm", "model": "bundled", "options": dict(VLLM_OPTIONS)},
        "sampling": {"temperature": 0.0, "max_tokens": 48, "seed": 0},
        "batch_size": BATCH,
    }
    if cluster:
        job["cluster"] = {"enabled": True, "workers": 2, "num_cpus": 1, "max_in_flight": 2, "max_restarts": 2}
    return job


def describe_difference(got: set[tuple], want: set[tuple]) -> str:
    """Both sides of every judgment that differs, for an assertion message."""
    by_key_got = {g[0]: g for g in got}
    by_key_want = {w[0]: w for w in want}
    lines = []
    for key in sorted(set(by_key_got) | set(by_key_want)):
        if by_key_got.get(key) != by_key_want.get(key):
            lines.append(f"{key[:12]}\n  pool:   {by_key_got.get(key)}\n  single: {by_key_want.get(key)}")
    return "\n".join(lines)


def session_pids(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == sid:
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def kill_session(sid: int) -> None:
    """SIGKILL every process of session ``sid`` (a killed driver's private Ray, a started head node)."""
    for _ in range(50):
        pids = session_pids(sid)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.2)
