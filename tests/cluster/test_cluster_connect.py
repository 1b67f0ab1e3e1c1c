"""Joining a cluster that is not there fails with a ClusterError that says what to do."""

from __future__ import annotations

import pytest

from cluster import connect
from judge.core._errors import ClusterError
from judge.core._config import ClusterConfig

pytestmark = pytest.mark.ray


def test_an_unreachable_cluster_address_is_a_clear_error():
    import ray

    assert not ray.is_initialized()
    # Port 9 (discard) has no Ray on it; Ray Client gives up after its connection timeout (~30 s).
    with pytest.raises(ClusterError, match=r"cannot join the Ray cluster at cluster.address='ray://127.0.0.1:9'"):
        connect(ClusterConfig(enabled=True, address="ray://127.0.0.1:9"))
    assert not ray.is_initialized()
    # The process can still start a private cluster afterwards.
    conn = connect(ClusterConfig(enabled=True, workers=1))
    try:
        assert conn.owned and ray.cluster_resources()["CPU"] >= 1
    finally:
        conn.close()
    assert not ray.is_initialized()


def test_workers_without_resources_are_refused():
    from cluster import check_resources
    from cluster._runtime import Connection

    with pytest.raises(ClusterError, match="num_cpus and cluster.num_gpus are both 0"):
        check_resources(ClusterConfig(enabled=True, num_cpus=0, num_gpus=0), 1, Connection("x", owned=False))


def test_a_local_start_that_timed_out_is_tried_again(monkeypatch):
    import ray

    from cluster._runtime import start_local_ray

    real_init, calls = ray.init, []

    def slow_first_start(**kw):
        calls.append(kw)
        if len(calls) == 1:  # what Ray raises when its node does not register within 30 s
            raise Exception("The current node timed out during startup. This could happen because ...")
        return real_init(**kw)

    monkeypatch.setattr(ray, "init", slow_first_start)
    start_local_ray(num_cpus=1)
    try:
        assert len(calls) == 2 and ray.is_initialized() and ray.cluster_resources()["CPU"] == 1
    finally:
        ray.shutdown()

    def broken(**kw):
        calls.append(kw)
        raise Exception("bad option")

    calls.clear()
    monkeypatch.setattr(ray, "init", broken)
    with pytest.raises(ClusterError, match="could not start a local Ray cluster: bad option"):
        start_local_ray(num_cpus=1)
    assert len(calls) == 1  # any other error is not retried
