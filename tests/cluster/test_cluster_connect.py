"""Joining a cluster that is not there fails with a ClusterError that says what to do."""

from __future__ import annotations

import pytest

from cluster import connect
from judge._errors import ClusterError
from judge.config import ClusterConfig

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
