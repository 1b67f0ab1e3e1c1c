"""Shared fixtures: the real bundled model, and one engine of each kind per test session.

Engine start is the expensive part (vLLM: 30-60 s on 2 cores), so every test that needs a real
backend shares these session-scoped instances. Pass them to ``run_job(cfg, backend=...)``.
"""

from __future__ import annotations

import os

# Before anything imports vLLM: a small KV cache, so several engines (tests, Ray actors) fit in RAM.
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from judge.core._env import apply_runtime_defaults  # noqa: E402

apply_runtime_defaults()

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def model_dir() -> str:
    """Path of the prepared bundled model (prepared here if `make` has not done it yet)."""
    from judge.backends._models import prepare_bundled_model

    return str(prepare_bundled_model())


@pytest.fixture(scope="session")
def vllm_backend(model_dir):
    """One vLLM engine (eager, bf16) for the whole session."""
    from judge.backends import create_backend

    backend = create_backend("vllm", model=model_dir, max_model_len=4096, enforce_eager=True)
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def vllm_float32(model_dir):
    """A float32 engine: the dtype whose runs reproduce whatever the batch and the prefix cache.

    In bf16, on CPUs with AMX tiles, the same request can read a logit one bf16 step apart from
    one run to the next (see test_reproducible_verdicts.py), so exact reruns are tested here.
    """
    from judge.backends import create_backend

    backend = create_backend("vllm", model=model_dir, dtype="float32", max_model_len=4096, enforce_eager=True)
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def hf_backend(model_dir):
    """One transformers model (bf16) for the whole session."""
    from judge.backends import create_backend

    backend = create_backend("hf", model=model_dir, batch_size=16)
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def served_judge(model_dir, tmp_path_factory):
    """A real OpenAI-compatible vLLM server (``judge.serve``) on 127.0.0.1 serving the bundled model
    as 'bundled', for the whole session: the openai backend's tests and the async reward share it.

    Yields its base URL. It runs in a process group of its own, so teardown stops the API server
    and the engine it spawned.
    """
    import signal
    import subprocess
    import sys
    import time

    import httpx
    from net_helpers import free_port

    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    cmd = [sys.executable, "-m", "judge.serve", "--model", "bundled", "--port", str(port),
           "--enforce-eager", "--max-model-len", "2048"]  # fmt: skip
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
                                env=dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1"))  # fmt: skip
    base_url = f"http://127.0.0.1:{port}/v1"

    def tail() -> str:
        return "\n".join(log.read_text(errors="replace").splitlines()[-40:])

    try:
        deadline = time.monotonic() + 600
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the server exited with status {proc.returncode}:\n{tail()}")
            try:
                if httpx.get(f"{base_url}/models", timeout=2.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not answer within 600 s:\n{tail()}")
            time.sleep(1.0)
        yield base_url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
