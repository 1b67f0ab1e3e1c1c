"""Joining a Ray cluster that was started apart from the job (``ray start --head``), by its address
and by ``auto``: the job runs on the cluster's node, and leaves the cluster running."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
import yaml
from cluster_helpers import judgment_set, kill_session, write_items
from net_helpers import free_port

pytestmark = [pytest.mark.ray, pytest.mark.model, pytest.mark.slow]


def _bin(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    return str(exe) if exe.exists() else name


@pytest.fixture(scope="module")
def head():
    """A head node on 127.0.0.1 with token authentication, in a session of its own (stopped by it).

    Yields its address and its token (a token of its own, so that ~/.ray is neither read nor written).
    """
    temp = tempfile.mkdtemp(prefix="jl-ray-", dir="/tmp")  # short: Ray's socket paths live under it
    port = free_port()
    token = uuid.uuid4().hex
    env = dict(
        os.environ,
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
        RAY_USAGE_STATS_ENABLED="0",
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=token,
    )
    cmd = [
        _bin("ray"), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
        f"--ray-client-server-port={free_port()}", "--num-cpus=2", f"--temp-dir={temp}",
        "--include-dashboard=false", "--disable-usage-stats",
    ]  # fmt: skip
    starter = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = starter.communicate(timeout=180)
        assert starter.returncode == 0, out.decode(errors="replace")[-3000:]
        yield f"127.0.0.1:{port}", token
    finally:
        kill_session(starter.pid)  # the head's processes stay in the session `ray start` began
        shutil.rmtree(temp, ignore_errors=True)


def _job(tmp_path: Path, address: str, model_dir: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "job.yaml"
    job = {
        "data": str(write_items(tmp_path / "items.jsonl", 4)),
        "output": str(tmp_path / "out" / "judgments.jsonl"),
        "rubrics": ["helpfulness"],
        "judge": {"backend": "hf", "model": model_dir, "options": {"dtype": "float32"}},
        "sampling": {"temperature": 0.0, "max_tokens": 48},
        "batch_size": 2,
        "cluster": {"enabled": True, "address": address, "workers": 1, "num_cpus": 1},
    }
    config.write_text(yaml.safe_dump(job), encoding="utf-8")
    return config


def _judge(config: Path, env: dict[str, str]) -> dict:
    cmd = [_bin("judgeloop"), "judge", "--config", str(config), "--no-progress", "--json"]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout[run.stdout.index("{") :])


def test_jobs_join_a_running_cluster_by_address_and_by_auto(head, model_dir, tmp_path):
    head, token = head
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    base.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)

    by_address = _job(tmp_path / "a", head, model_dir)
    first = _judge(by_address, base)
    assert first["new_judgments"] == 4 and first["unscored"] == 0
    extra = first["executor"]
    assert extra["address"] == head and [w["node"] for w in extra["workers"]] == ["127.0.0.1"]

    # The first job disconnected without stopping the cluster: a second one finds it through
    # RAY_ADDRESS, as the entrypoint of `ray job submit` does.
    by_auto = _job(tmp_path / "b", "auto", model_dir)
    second = _judge(by_auto, dict(base, RAY_ADDRESS=head))
    assert second["new_judgments"] == 4 and second["executor"]["address"] == "auto"
    out_a = yaml.safe_load(by_address.read_text())["output"]
    out_b = yaml.safe_load(by_auto.read_text())["output"]
    assert judgment_set(Path(out_a)) == judgment_set(Path(out_b))


def test_an_explicit_address_without_the_token_says_how_to_authenticate(head, tmp_path, model_dir):
    head, _ = head
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    cmd = [_bin("judgeloop"), "judge", "--config", str(_job(tmp_path, head, model_dir)), "--no-progress"]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode != 0
    assert f"cannot join the Ray cluster at cluster.address='{head}'" in run.stderr
    assert "RAY_AUTH_MODE=token" in run.stderr
