"""Connecting to Ray, and the checks that make a bad worker config fail fast instead of hanging."""

from __future__ import annotations

import os
import sys
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from judge.core._errors import ClusterError, MissingDependencyError
from judge.core._config import ClusterConfig
from judge.core._env import temporary_env

# A local cluster gets one logical CPU more than the machine has, so the driver's own small tasks
# still run when the judge actors reserve every core (Ray would otherwise queue them forever).
LOCAL_DRIVER_CPUS = 1


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("running on a cluster needs Ray: pip install 'judgeloop[cluster]'") from None
    return ray


@dataclass
class Connection:
    """A connection to Ray; ``owned`` when this process started (and so must stop) the cluster."""

    address: str
    owned: bool
    reserved_cpus: float = 0.0

    def close(self) -> None:
        if self.owned:
            import_ray().shutdown()


def connect(cc: ClusterConfig) -> Connection:
    """Join the configured cluster, or start a private local one on 127.0.0.1.

    A process already connected to Ray (a test, a notebook, a Ray job's entrypoint that called
    ``ray.init``) keeps its connection, and it is not shut down at the end of the job.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if _on_loopback(cc.address) and "ray" not in sys.modules:
        # Ray turns a 127.0.0.1 node address into the machine's public one unless multi-node
        # clustering is off (the variable's name is historical; it is read when Ray is imported).
        # A private local cluster, or one whose head listens on the loopback interface only, has
        # no other node: keep every port on the loopback interface.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray = import_ray()
    if ray.is_initialized():
        return Connection(address="existing", owned=False)
    if cc.address is None:
        start_local_ray((os.cpu_count() or 1) + LOCAL_DRIVER_CPUS)
        return Connection(address="local", owned=True, reserved_cpus=LOCAL_DRIVER_CPUS)
    try:
        ray.init(address=cc.address, log_to_driver=False)
    except Exception as exc:  # ConnectionError, or Ray's own errors for a bad address
        ray.shutdown()  # a failed Ray Client connection leaves client mode on in this process
        auth = (
            ""
            if os.environ.get("RAY_AUTH_MODE")
            else " If the cluster uses token authentication (the default of `ray start` in Ray "
            "2.60), set RAY_AUTH_MODE=token and give this machine the cluster's token "
            "(~/.ray/auth_token or RAY_AUTH_TOKEN)."
        )
        raise ClusterError(
            f"cannot join the Ray cluster at cluster.address={cc.address!r}: {exc}. Start one with "
            "`ray start --head` (or `ray up cluster/cluster.yaml`), or leave cluster.address unset "
            f"for a private local cluster.{auth}"
        ) from None
    return Connection(address=cc.address, owned=True)


def _on_loopback(address: str | None) -> bool:
    """Whether Ray at ``address`` (None: a private one; ``auto``: $RAY_ADDRESS) is on this host only."""
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS") or ""
    if address is None:
        return True
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    return host == "localhost" or host == "::1" or host.startswith("127.")


#: What Ray raises when a local start ran out of time (an Exception, a RuntimeError): the node did not
#: register with its control store within 30 s, or the control store (GCS) did not publish its port
#: within RAY_gcs_server_port_wait_time_s (default 30 s). Both mean "too slow", never "misconfigured".
START_TIMEOUTS = ("timed out during startup", "Timed out waiting for file")
#: Seconds the control store gets to publish its port on a retry, unless the user set their own.
RETRY_GCS_WAIT_S = 90


def _start_timed_out(exc: BaseException) -> bool:
    return any(marker in str(exc) for marker in START_TIMEOUTS)


def start_local_ray(num_cpus: int, attempts: int = 3) -> None:
    """Start a private single-node Ray on 127.0.0.1 with ``num_cpus`` logical CPUs.

    Ray gives a new node fixed times to start (30 s for the control store to publish its port, 30 s
    for the node to register with it); on a machine whose cores are busy (other engines loading)
    either can pass, and Ray then stops what it started and raises. Such a start is tried again,
    the retries with a longer wait for the control store, before the error reaches the user; any
    other error is reported at once.
    """
    ray = import_ray()
    for attempt in range(1, attempts + 1):
        override = attempt > 1 and "RAY_gcs_server_port_wait_time_s" not in os.environ
        wait = temporary_env({"RAY_gcs_server_port_wait_time_s": str(RETRY_GCS_WAIT_S)}) if override else nullcontext()
        try:
            with wait:
                ray.init(
                    address="local",  # never attach to a stale cluster left in Ray's temporary folder
                    num_cpus=num_cpus,
                    include_dashboard=False,
                    log_to_driver=False,
                    _node_ip_address="127.0.0.1",
                )
            return
        except Exception as exc:  # Ray raises a bare Exception (or RuntimeError) for a slow start
            ray.shutdown()
            if attempt == attempts or not _start_timed_out(exc):
                tried = f" (tried {attempt} times)" if attempt > 1 else ""
                raise ClusterError(f"could not start a local Ray cluster{tried}: {exc}") from exc


def bundle_shapes(cc: ClusterConfig, tensor_parallel: int) -> list[dict[str, float]]:
    """The resource bundles of one worker: one, or one GPU bundle per tensor-parallel rank."""
    if cc.num_gpus > 0 and tensor_parallel > 1:
        # vLLM's Ray executor starts one process per rank inside the worker's placement group;
        # each takes one GPU bundle. The worker actor itself lives on bundle 0 with its CPUs.
        return [{"CPU": cc.num_cpus, "GPU": 1.0}] + [{"GPU": 1.0} for _ in range(tensor_parallel - 1)]
    shape = {"CPU": cc.num_cpus, "GPU": cc.num_gpus}
    return [{k: v for k, v in shape.items() if v > 0}]


def check_resources(cc: ClusterConfig, tensor_parallel: int, conn: Connection) -> None:
    """Fail with a clear message when the cluster cannot hold the requested workers right now."""
    if cc.num_cpus <= 0 and cc.num_gpus <= 0:
        raise ClusterError(
            "each worker must reserve some resources: cluster.num_cpus and cluster.num_gpus are both 0"
        )
    ray = import_ray()
    total = ray.cluster_resources()
    shapes = bundle_shapes(cc, tensor_parallel)
    need: dict[str, float] = {}
    for shape in shapes:
        for k, v in shape.items():
            need[k] = need.get(k, 0.0) + v * cc.workers
    have = dict(total)
    have["CPU"] = have.get("CPU", 0.0) - conn.reserved_cpus
    per_worker = ", ".join(f"{k}={v:g}" for k, v in _sum(shapes).items())
    for res, amount in sorted(need.items()):
        if amount > have.get(res, 0.0) + 1e-9:
            raise ClusterError(
                f"cluster.workers={cc.workers} workers x ({per_worker}) need {amount:g} {res}, but the Ray "
                f"cluster has {have.get(res, 0.0):g} {res} in total"
                + (" (one CPU of the local cluster is kept for the driver)" if res == "CPU" and conn.reserved_cpus else "")
                + ". Lower cluster.workers, cluster.num_cpus or cluster.num_gpus, or add nodes."
            )
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    biggest = shapes[0] if len(shapes) == 1 else _sum(shapes)
    if not any(_fits(biggest, n.get("Resources", {})) for n in nodes):
        raise ClusterError(
            f"no node of the Ray cluster can hold one worker ({per_worker}); node sizes: "
            + "; ".join(
                f"{n.get('NodeManagerAddress')}: CPU={n['Resources'].get('CPU', 0):g} GPU={n['Resources'].get('GPU', 0):g}"
                for n in nodes
            )
        )


def _sum(shapes: list[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for s in shapes:
        for k, v in s.items():
            out[k] = out.get(k, 0.0) + v
    return out


def _fits(shape: dict[str, float], resources: dict[str, float]) -> bool:
    return all(resources.get(k, 0.0) + 1e-9 >= v for k, v in shape.items())


def _probe(path: str) -> tuple[str, bool]:
    import ray

    return ray.util.get_node_ip_address(), (Path(path) / "config.json").is_file()


def check_model_on_nodes(model: str, shape: dict[str, float], timeout_s: float) -> list[str]:
    """Check that ``model`` is a model directory on every node that could host a worker.

    Returns the addresses of the nodes checked. Raises :class:`ClusterError` naming the nodes that
    lack it: every node must see the model at the same path (a shared filesystem, or the same
    image with the model baked in).
    """
    ray = import_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=0, max_retries=0)(_probe)
    nodes = [n for n in ray.nodes() if n.get("Alive") and _fits(shape, n.get("Resources", {}))]
    refs = [
        probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(model)
        for n in nodes
    ]
    try:
        results = ray.get(refs, timeout=timeout_s)
    except ray.exceptions.GetTimeoutError:
        raise ClusterError(
            f"checking the judge model on {len(nodes)} node(s) took longer than {timeout_s:g}s; the "
            "cluster cannot run tasks (are all CPUs held by other actors?)"
        ) from None
    missing = [ip for ip, ok in results if not ok]
    if missing:
        raise ClusterError(
            f"the judge model directory {model} (with config.json) is missing on node(s) {', '.join(missing)}. "
            "Every node that runs judges must see the model at the same path: put it on a shared "
            "filesystem, bake it into the nodes' image, or set JUDGELOOP_CACHE to a shared directory."
        )
    return [ip for ip, _ in results]
