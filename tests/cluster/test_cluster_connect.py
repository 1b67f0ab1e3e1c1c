"""Joining a cluster that is not there fails with a ClusterError that says what to do."""

from __future__ import annotations

import pytest

from cluster import connect
from judge.core._errors import ClusterError
from judge.core._config import ClusterConfig

pytestmark = pytest.mark.ray


def test_an_unreachable_cluster_address_is_a_clear_error(monkeypatch):
    import ray
    import ray.util.client.worker as client_worker

    assert not ray.is_initialized()
    # Port 9 (discard) has no Ray on it. Ray Client tries 3 times, waiting 5, 10 and 15 s; the error
    # is under test, not Ray's wait, so each attempt here waits 1 s.
    monkeypatch.setattr(client_worker, "INITIAL_TIMEOUT_SEC", 1)
    monkeypatch.setattr(client_worker, "MAX_TIMEOUT_SEC", 1)
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


# The two messages Ray 2.60 gives for a start that ran out of time on a busy machine: the node did
# not register (a bare Exception from ray/_private/node.py), or the control store did not publish
# its port (a RuntimeError from ray._raylet.wait_for_persisted_port).
SLOW_STARTS = [
    Exception("The current node timed out during startup. This could happen because some of the raylet failed to "
              "startup or the GCS has become overloaded."),  # fmt: skip
    RuntimeError("Timed out waiting for file /tmp/ray/session_x/gcs_server_port_0123abcd"),
]


@pytest.mark.parametrize("slow", SLOW_STARTS, ids=["node-registration", "gcs-port-file"])
def test_a_local_start_that_timed_out_is_tried_again(monkeypatch, slow):
    import os

    import ray

    from cluster._runtime import RETRY_GCS_WAIT_S, start_local_ray

    real_init, calls, waits = ray.init, [], []
    monkeypatch.delenv("RAY_gcs_server_port_wait_time_s", raising=False)

    def slow_first_start(**kw):
        calls.append(kw)
        waits.append(os.environ.get("RAY_gcs_server_port_wait_time_s"))
        if len(calls) == 1:
            raise slow
        return real_init(**kw)

    monkeypatch.setattr(ray, "init", slow_first_start)
    start_local_ray(num_cpus=1)
    try:
        # The real start may itself be slow on a busy machine and be retried once more.
        assert len(calls) >= 2 and ray.is_initialized() and ray.cluster_resources()["CPU"] == 1
        assert all(kw == calls[0] for kw in calls)  # the same start, tried again
        # The retries give the control store longer; the user's environment is left as it was.
        assert waits[0] is None and set(waits[1:]) == {str(RETRY_GCS_WAIT_S)}
        assert "RAY_gcs_server_port_wait_time_s" not in os.environ
    finally:
        ray.shutdown()


def test_a_start_that_keeps_timing_out_or_fails_otherwise_is_a_clear_error(monkeypatch):
    import ray

    from cluster._runtime import start_local_ray

    calls = []

    def always_slow(**kw):
        calls.append(kw)
        raise SLOW_STARTS[1]

    monkeypatch.setattr(ray, "init", always_slow)
    with pytest.raises(ClusterError, match="could not start a local Ray cluster \\(tried 3 times\\): Timed out waiting"):
        start_local_ray(num_cpus=1)
    assert len(calls) == 3

    def broken(**kw):
        calls.append(kw)
        raise Exception("bad option")

    calls.clear()
    monkeypatch.setattr(ray, "init", broken)
    with pytest.raises(ClusterError, match="could not start a local Ray cluster: bad option"):
        start_local_ray(num_cpus=1)
    assert len(calls) == 1  # any other error is not retried
