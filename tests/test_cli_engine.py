"""The command line on the real bundled model, in a subprocess as a user runs it.

- ``--json`` leaves only the JSON on stdout, with the hf and the vllm backend (vLLM's start-up
  logs, warnings and the progress bar go to stderr, and are quiet without ``-v``). The vllm case
  is checked on both runs of the SIGTERM test: each CLI run starts an engine, which is its cost.
- ``--backend hf`` on a config written for vllm runs, dropping ``enforce_eager`` with a note.
- SIGTERM during a vLLM job whose engine runs in its own processes exits promptly, leaves no
  ``EngineCore`` process behind, and the ``.part`` file resumes: a rerun with the engine in-process
  finishes the job.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
JUDGELOOP = [sys.executable, "-m", "judge.cli"]

pytestmark = [pytest.mark.model, pytest.mark.timeout(900)]


def _env() -> dict[str, str]:
    # The CLI's own defaults are under test: drop what conftest or the shell set for logs.
    drop = ("VLLM_LOGGING_LEVEL", "VLLM_LOGGING_STREAM", "TRANSFORMERS_VERBOSITY", "DATASETS_VERBOSITY")
    return {k: v for k, v in os.environ.items() if k not in drop}


def _job(tmp_path: Path, rows: list[dict], model_dir: str, **extra) -> Path:
    """A job config like configs/demo.yaml (vllm, enforce_eager), on the given rows."""
    cfg = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    data = tmp_path / "items.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg.update(data=str(data), output=str(tmp_path / "out" / "judgments.jsonl"), **extra)
    cfg["judge"]["model"] = model_dir
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _demo_rows() -> list[dict]:
    """The demo's valid pointwise rows (the demo file also holds deliberately bad ones)."""
    rows = []
    for line in (ROOT / "examples" / "demo.jsonl").read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row.get("response"), str):
            rows.append(row)
    assert len(rows) >= 10
    return rows


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(JUDGELOOP + args, capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=600)


def _info_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if re.search(r"\bINFO\b", line)]


def test_json_with_the_hf_backend_switched_from_a_vllm_config(tmp_path, model_dir):
    job = _job(tmp_path, _demo_rows()[:6], model_dir)
    proc = _run(["judge", "--config", str(job), "--backend", "hf", "--batch-size", "3", "--json"])
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)  # stdout is the JSON and nothing else
    assert summary["items"] == 6 and summary["judgments"] == 6
    assert "ignoring the config's vllm option(s) enforce_eager" in proc.stderr
    assert "has no option" not in proc.stderr
    assert "it/s" in proc.stderr or "%|" in proc.stderr  # the progress bar went to stderr
    judged = [json.loads(x) for x in (tmp_path / "out" / "judgments.jsonl").read_text().splitlines()]
    assert {j["judge"]["backend"] for j in judged} == {"hf"}


def _engine_cores(proc: "psutil.Process") -> list["psutil.Process"]:  # noqa: F821
    import psutil

    found = []
    for child in proc.children(recursive=True):
        try:
            if "EngineCore" in child.name() or any("EngineCore" in part for part in child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


@pytest.mark.vllm
def test_sigterm_shuts_the_engine_down_and_the_job_resumes(tmp_path, model_dir):
    import psutil

    base = _demo_rows()
    # 60 distinct items (same texts would be judged once), 15 batches of 4: far from done when stopped
    # after the first batches, and the rerun stays short.
    rows = [dict(r, id=f"{r['id']}-{k}", response=f"{r['response']} (answer {k})") for k in range(5) for r in base]
    job = _job(tmp_path, rows, model_dir, batch_size=4)
    # The interrupted run's engine has vLLM's own EngineCore process (the GPU default), the one
    # SIGTERM could orphan; the rerun is in-process (the CPU default) and resumes all the same.
    cfg = yaml.safe_load(job.read_text())
    cfg["judge"]["options"]["in_process"] = False
    job.write_text(yaml.safe_dump(cfg))
    part = tmp_path / "out" / "judgments.jsonl.part"
    stderr_path = tmp_path / "stderr.txt"
    with stderr_path.open("w") as err:
        child = subprocess.Popen(
            JUDGELOOP + ["judge", "--config", str(job), "--json"],
            stdout=subprocess.PIPE, stderr=err, text=True, env=_env(), cwd=ROOT,
        )
        parent = psutil.Process(child.pid)
        cores: list[psutil.Process] = []
        deadline = time.monotonic() + 300
        # Wait until the engine is up and judging: an EngineCore child exists and judgments are on disk.
        while time.monotonic() < deadline and child.poll() is None:
            cores = cores or _engine_cores(parent)
            if cores and part.exists() and part.read_text().count("\n") >= 4:
                break
            time.sleep(0.5)
        assert child.poll() is None, f"the job ended before it could be stopped:\n{stderr_path.read_text()[-3000:]}"
        assert cores, "no EngineCore child process found"
        core_pids = [c.pid for c in cores]
        child.send_signal(signal.SIGTERM)
        try:
            out, _ = child.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            child.kill()
            pytest.fail("judgeloop did not exit within 90 s of SIGTERM")
    stderr = stderr_path.read_text()
    assert child.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert "stopped by SIGTERM" in stderr
    assert out == ""  # no half summary on stdout
    # Without -v, vLLM's ~40 INFO lines of engine start-up are not shown at all.
    assert _info_lines(stderr) == [], "\n".join(_info_lines(stderr)[:10])
    gone, alive = psutil.wait_procs([psutil.Process(p) for p in core_pids if psutil.pid_exists(p)], timeout=30)
    alive = [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"EngineCore survived SIGTERM: {[p.pid for p in alive]}"

    done_before = part.read_text().count("\n")
    assert 4 <= done_before < len(rows)
    del cfg["judge"]["options"]["in_process"]
    job.write_text(yaml.safe_dump(cfg))
    rerun = _run(["judge", "--config", str(job), "--json"])
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)  # --json with vllm: stdout is the JSON and nothing else
    assert summary["items"] == len(rows)
    assert _info_lines(rerun.stderr) == [], "\n".join(_info_lines(rerun.stderr)[:10])
    assert summary["judgments"] == len(rows)
    assert summary["resumed"] + summary.get("cached", 0) >= done_before
    assert summary["new_judgments"] <= len(rows) - done_before + 4  # at most a torn last batch is redone
    ids = [json.loads(x)["item_id"] for x in (tmp_path / "out" / "judgments.jsonl").read_text().splitlines()]
    assert sorted(ids) == sorted(r["id"] for r in rows)
