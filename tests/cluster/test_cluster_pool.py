"""The Ray pool with scripted backends inside the actors: scheduling, retries, fail-fast checks.

Every test runs on a real local Ray; only the judge is scripted (``judge.backends.ScriptedBackend``,
created inside each actor), so these run in seconds. The end-to-end tests on the bundled model are
in ``test_cluster_e2e.py`` and ``test_cluster_driver_kill.py``.
"""

from __future__ import annotations

import json
import time

import pytest

from cluster import JudgePool, check_model_on_nodes, connect, run_cluster_job
from judge.core._errors import ClusterError, ConfigError
from judge.core._config import JobConfig

pytestmark = pytest.mark.ray

VERDICT = '{"helpfulness": 4, "rationale": "fine"}'


def slow_verdict(prompt, params):
    time.sleep(0.05)  # long enough that a worker killed mid-job holds batches
    return VERDICT


def _cfg(tmp_path, n=40, **cluster) -> JobConfig:
    data = tmp_path / "data.jsonl"
    data.write_text(
        "".join(json.dumps({"id": f"i{i}", "prompt": f"q{i}", "response": f"a{i}"}) + "\n" for i in range(n)),
        encoding="utf-8",
    )
    return JobConfig.model_validate(
        {
            "data": data,
            "output": tmp_path / "out" / "judgments.jsonl",
            "batch_size": 4,
            "judge": {"backend": "scripted", "options": {"responder": slow_verdict}},
            "cluster": {"enabled": True, "workers": 2, "num_cpus": 1, "max_in_flight": 2, **cluster},
        }
    )


def _keys(path):
    return [json.loads(line)["key"] for line in path.read_text(encoding="utf-8").splitlines()]


def test_pool_judges_every_item_once_and_reports_workers(tmp_path, ray_local):
    cfg = _cfg(tmp_path)
    pool = JudgePool(cfg, connect(cfg.cluster))
    try:
        summary = run_cluster_job(cfg, progress=False, pool=pool)
        keys = _keys(cfg.output)
        assert len(keys) == len(set(keys)) == 40
        extra = summary.executor.model_dump()
        assert extra["executor"] == "ray" and len(extra["workers"]) == 2
        assert sum(w["judgments"] for w in extra["workers"]) == 40
        assert all(w["batches"] > 0 and w["judgments_per_s"] > 0 for w in extra["workers"])
        assert {tuple(w["cores"]) for w in extra["workers"]} == {(0,), (1,)}  # one core each
        assert 1 <= extra["max_queue_depth"] <= 2 * 2
        assert extra["worker_s_per_1k"] > 0 and extra["retries"] == extra["failures"] == 0
        assert "w0" in pool.postfix() and "retries 0" in pool.postfix()
        assert "workers 2" in summary.table() and "worker-s per 1k" in summary.table()
        # A finished job reruns without judging anything.
        again = run_cluster_job(cfg, progress=False, pool=pool)
        assert again.new_judgments == 0 and again.resumed == 40
    finally:
        pool.close()


def test_killed_worker_batches_are_retried_and_judged_exactly_once(tmp_path, ray_local):
    cfg = _cfg(tmp_path, n=60)
    pool = JudgePool(cfg, connect(cfg.cluster))
    killed = []

    def kill_one(n_batches: int) -> None:
        busy = [i for i, w in enumerate(pool.status()) if w["available"] and w["inflight"] > 0]
        if n_batches >= 2 and busy and not killed:
            ray_local.kill(pool.actors[busy[0]], no_restart=False)  # Ray restarts it (max_restarts)
            killed.append(busy[0])

    try:
        summary = run_cluster_job(cfg, progress=False, on_batch=kill_one, pool=pool)
    finally:
        pool.close()
    keys = _keys(cfg.output)
    assert killed and len(keys) == len(set(keys)) == 60
    assert summary.new_judgments == 60
    assert summary.executor.failures >= 1 and summary.executor.retries >= 1
    assert summary.executor.workers[killed[0]].failures >= 1


def test_a_job_with_nothing_to_do_starts_no_workers(tmp_path, ray_local):
    cfg = _cfg(tmp_path, n=4)
    run_cluster_job(cfg, progress=False)
    pool = JudgePool(cfg, connect(cfg.cluster))
    summary = run_cluster_job(cfg, progress=False, pool=pool)
    assert summary.resumed == 4 and pool.actors == [None, None]
    pool.close()


def test_a_worker_that_cannot_create_its_backend_fails_the_start_at_once(tmp_path, ray_local):
    cfg = _cfg(tmp_path, n=4)
    cfg.judge.options["max_model_len"] = 0  # a known option whose value only the backend itself refuses
    with pytest.raises(ClusterError, match=r"worker w\d failed to start: .*max_model_len must be >= 1"):
        run_cluster_job(cfg, progress=False)


def test_an_unknown_backend_option_fails_before_ray_starts(tmp_path, ray_local):
    cfg = _cfg(tmp_path, n=4)
    cfg.judge.options["no_such_option"] = 1
    with pytest.raises(ConfigError, match=r"backend 'scripted' has no option\(s\) \['no_such_option'\]"):
        run_cluster_job(cfg, progress=False)
    assert not cfg.output.parent.exists()


@pytest.mark.parametrize(
    "cluster, expected",
    [
        ({"workers": 1, "num_gpus": 1}, "need 1 GPU, but the Ray cluster has 0 GPU"),
        ({"workers": 8, "num_cpus": 1}, "need 8 CPU, but the Ray cluster has 3 CPU"),
        ({"workers": 1, "num_cpus": 3.5}, "need 3.5 CPU"),
    ],
)
@pytest.mark.timeout(300)  # a hang (waiting for resources that will never come) fails here
def test_a_worker_config_the_cluster_cannot_hold_fails_at_once(tmp_path, ray_local, cluster, expected):
    # With an hour to wait for resources, only a check before any waiting can raise this error.
    cfg = _cfg(tmp_path, n=4, startup_timeout_s=3600, **cluster)
    with pytest.raises(ClusterError, match=expected):
        run_cluster_job(cfg, progress=False)
    assert not cfg.output.exists()


def test_resources_held_by_others_fail_after_the_startup_timeout(tmp_path, ray_local):
    from ray.util.placement_group import placement_group, remove_placement_group

    hog = placement_group([{"CPU": 2}])
    ray_local.get(hog.ready(), timeout=60)
    try:
        cfg = _cfg(tmp_path, n=4, startup_timeout_s=3)
        with pytest.raises(ClusterError, match="held by other jobs"):
            run_cluster_job(cfg, progress=False)
    finally:
        remove_placement_group(hog)


def test_a_missing_model_directory_is_named_with_its_node(ray_local, tmp_path):
    with pytest.raises(ClusterError, match=r"missing on node\(s\) 127\.0\.0\.1"):
        check_model_on_nodes(str(tmp_path / "no-such-model"), {"CPU": 1}, timeout_s=60)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    assert check_model_on_nodes(str(tmp_path / "m"), {"CPU": 1}, timeout_s=60) == ["127.0.0.1"]


def _per_prompt(prompt, params):
    # Each member's rubric asks for its own keys: answer every key of the schema with a 4.
    props = (params.json_schema or {}).get("properties", {})
    return json.dumps({k: 4 for k in props if k != "rationale"})


def test_a_jury_with_the_cluster_enabled_runs_every_member_on_the_pool(tmp_path, ray_local):
    from judge.analysis import member_outputs
    from judge.runner import run_jury

    base = _cfg(tmp_path, n=8)
    cfg = base.model_copy(
        update={
            "judge": base.judge.model_copy(update={"options": {"responder": _per_prompt}}),
            "scoring": base.scoring.model_copy(update={"method": "json"}),
            "jury": {"members": [{"name": "helpful", "rubric": "helpfulness"}, {"name": "honest", "rubric": "honesty"}]},
        }
    )
    cfg = type(cfg).model_validate(cfg.model_dump())
    summary = run_jury(cfg, progress=False)
    assert summary.items == 8 and set(summary.members) == {"helpful", "honest"}
    for name in ("helpful", "honest"):
        written = json.loads((member_outputs(cfg.output) / f"{name}.summary.json").read_text())
        # Ran on Ray workers: the pool's statistics are in the member's summary.
        assert written["executor"]["executor"] == "ray" and written["judgments"] == 8
        assert sum(w["judgments"] for w in written["executor"]["workers"]) == 8
