"""SIGKILL the driver of a cluster job mid-job; rerunning the same command does only the missing
work and ends with the same judgments as an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from cluster_helpers import N_ITEMS, describe_difference, job_dict, judgment_set, kill_session

pytestmark = [pytest.mark.ray, pytest.mark.vllm, pytest.mark.model, pytest.mark.slow]


def _command(config: Path) -> list[str]:
    exe = Path(sys.executable).with_name("judgeloop")
    head = [str(exe)] if exe.exists() else [sys.executable, "-m", "judge.cli"]
    return head + ["judge", "--config", str(config), "--no-progress", "--json"]


def _complete_lines(path: Path) -> int:
    if not path.exists():
        return 0
    return path.read_bytes().count(b"\n")


def test_killed_driver_rerun_does_only_the_missing_work(items, reference, tmp_path):
    output = tmp_path / "out" / "judgments.jsonl"
    config = tmp_path / "job.yaml"
    job = job_dict(items, output, cluster=True)
    # One worker: the kill and the resume are the driver's, and each run starts one engine, not two.
    job["cluster"]["workers"] = 1
    config.write_text(yaml.safe_dump(job), encoding="utf-8")
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1", RAY_USAGE_STATS_ENABLED="0")
    part = output.with_name(output.name + ".part")

    log = (tmp_path / "first.log").open("w")
    driver = subprocess.Popen(_command(config), env=env, stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + 900
        while _complete_lines(part) < 2 and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert driver.poll() is None, f"the job ended before it could be killed: {(tmp_path / 'first.log').read_text()[-3000:]}"
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=60)
    finally:
        kill_session(driver.pid)
        log.close()
    at_kill = _complete_lines(part)
    assert 0 < at_kill < N_ITEMS and not output.exists()

    rerun = subprocess.run(_command(config), env=env, capture_output=True, text=True, timeout=1200)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    summary = json.loads(rerun.stdout[rerun.stdout.index("{") :])
    assert summary["resumed"] == at_kill
    assert summary["new_judgments"] == N_ITEMS - at_kill
    assert summary["cached"] == 0  # the cache never holds what the output lacks
    keys = [json.loads(line)["key"] for line in output.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == N_ITEMS
    got = judgment_set(output)
    assert got == reference, describe_difference(got, reference)
