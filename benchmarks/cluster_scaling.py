"""Cluster scaling: the Ray pool against the single-process engine, and the driver's memory.

Throughput (the bundled model on vLLM, greedy, the same items and batches for every system):

- ``single``: the single-process engine (``run_job``), its vLLM engine bound to every core;
- ``pool 1x2``: the Ray pool with one worker holding every core: the same hardware as ``single``,
  so the difference is the pool's overhead (target: under 10%);
- ``pool 1x1`` and ``pool 2x1``: one worker on one core, then two workers on one core each: the
  scaling from one worker to two.

``single`` and ``pool 1x2`` run alternately (``--repeats`` times each, their engines loaded once) so
that load from other processes on a shared machine hits both alike; the medians are compared. Each
repeat judges a new set of items (the same sets for every system), so no engine sees a prompt twice
(only the rubric's shared prefix is cached, as in real jobs); every engine first judges a small
warm-up set that is not counted. Judgments/s are over the judging phase only (engine start
excluded, every driver-side cost included): the first batch sent to the last result written.

Driver memory: the peak RSS of the driver process for a cluster job of 10k and of 100k synthetic
items (each size in a fresh process, two workers), each item judged by a pointwise rubric and by a
pairwise one in both orders (three judgments an item). The workers run the ``scripted`` backend,
which answers at once, so this measures the driver (reading, request building, the cache and
ledger, dispatch, writing, and the end of the job: summary, pair verdicts, bias diagnostics), not
the model. Target: peak RSS at 100k within 1.2x of 10k.

    python benchmarks/cluster_scaling.py                       # writes runs/bench/cluster_scaling.json
    python benchmarks/cluster_scaling.py --items 32 --repeats 1 --rss-sizes 1000 10000
    python benchmarks/cluster_scaling.py --skip-throughput    # re-measure memory, keep the rest of the JSON
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
# A private local Ray on the loopback interface (read when Ray is imported).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

_TOPICS = [
    "sourdough bread", "a home network", "compound interest", "tomato plants", "a job interview",
    "a 10 km race", "unit tests in Python", "jet lag", "a leaking tap", "the French subjunctive",
    "a first aquarium", "solar panels", "a wedding toast", "backing up photos", "a used car",
    "learning the guitar", "a slow laptop", "a camping trip", "a cover letter", "cast-iron pans",
]  # fmt: skip
_ANSWERS = [
    "Start simple and change one thing at a time, so you know what made the difference.",
    "Write down what you did and what happened; after a few attempts the pattern is obvious.",
    "Do not buy expensive equipment first: technique matters more in the first weeks.",
    "Check the basics first; most failures have a boring cause.",
]


def write_items(path: Path, n: int, salt: int = 0, pairs: bool = False) -> Path:
    """``n`` distinct pointwise items, deterministic; another ``salt`` gives other texts.

    With ``pairs``, every item also holds two responses for a pairwise rubric.
    """
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            topic = _TOPICS[i % len(_TOPICS)]
            answer = " ".join(_ANSWERS[(i + k) % len(_ANSWERS)] for k in range(1 + i % 3))
            row = {"id": f"item-{i:06d}", "prompt": f"How do I get started with {topic}? (case {i}, set {salt})", "response": answer}
            if pairs:
                row["response_a"] = answer
                row["response_b"] = _ANSWERS[i % len(_ANSWERS)]
            fh.write(json.dumps(row) + "\n")
    return path


# ----------------------------------------------------------------------------------------------
# Throughput


class TimedLocal:
    """The engine's in-process executor, timed like the pool: first batch sent to last result."""

    def __init__(self, backend: Any) -> None:
        from judge.runner._engine import LocalExecutor

        self._inner = LocalExecutor(lambda: backend, owns_backend=False)
        self._t0: float | None = None
        self.wall = 0.0

    def run(self, batches):
        try:
            yield from self._inner.run(self._timed(batches))
        finally:
            if self._t0 is not None:
                self.wall = time.perf_counter() - self._t0

    def _timed(self, batches):
        for b in batches:
            if self._t0 is None:
                self._t0 = time.perf_counter()
            yield b

    def stats(self) -> dict[str, Any]:
        return {"judge_wall_s": self.wall}

    def close(self) -> None:
        pass


def job(data: Path, out: Path, batch_size: int, max_tokens: int, workers: int = 1, cpus: float = 1.0) -> Any:
    from judge.core._config import JobConfig

    return JobConfig.model_validate(
        {
            "data": str(data),
            "output": str(out),
            "rubrics": ["helpfulness"],
            "judge": {
                "backend": "vllm",
                "model": "bundled",
                "options": {"dtype": "bfloat16", "max_model_len": 2048, "enforce_eager": True, "kv_cache_gib": 1},
            },
            "sampling": {"temperature": 0.0, "max_tokens": max_tokens, "seed": 0},
            "batch_size": batch_size,
            "cluster": {"enabled": True, "workers": workers, "num_cpus": cpus, "max_in_flight": 2},
        }
    )


def throughput(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import ray

    from cluster import JudgePool, connect, run_cluster_job
    from cluster._runtime import LOCAL_DRIVER_CPUS, start_local_ray
    from judge.backends import create_backend
    from judge.runner._engine import job_judge_id, run_job
    from judge.backends._models import resolve_model

    sets = [write_items(work / f"items-{r}.jsonl", args.items, salt=r) for r in range(args.repeats)]
    warm = write_items(work / "warm.jsonl", 8, salt=10_000)
    runs: dict[str, list[float]] = {"single": [], "pool 1x2": [], "pool 1x1": [], "pool 2x1": []}
    starts: dict[str, float] = {}
    counter = iter(range(10_000))

    def fresh(name: str):
        return work / f"{name.replace(' ', '_')}-{next(counter)}" / "judgments.jsonl"

    def record(name: str, summary: Any) -> None:
        assert summary.new_judgments == args.items, (name, summary.new_judgments)
        runs[name].append(summary.new_judgments / summary.judge_s)
        print(f"  {name:<9} {runs[name][-1]:7.2f} judgments/s", flush=True)

    start_local_ray((os.cpu_count() or 1) + LOCAL_DRIVER_CPUS)
    try:
        # single vs pool 1x2: alternate, both engines loaded once.
        cfg = job(warm, fresh("single"), args.batch_size, args.max_tokens, workers=1, cpus=os.cpu_count() or 1)
        t0 = time.perf_counter()
        backend = create_backend("vllm", model=resolve_model("bundled"), **cfg.judge.options)
        starts["single"] = time.perf_counter() - t0
        pool = JudgePool(cfg, connect(cfg.cluster))
        pool.start()
        starts["pool 1x2"] = pool.startup_s
        try:
            run_job(cfg, progress=False, executor=TimedLocal(backend), judge_id=job_judge_id(cfg))  # warm-up
            run_cluster_job(cfg.model_copy(update={"output": fresh("warm")}), progress=False, pool=pool)
            for data in sets:
                c = cfg.model_copy(update={"data": data, "output": fresh("single")})
                record("single", run_job(c, progress=False, executor=TimedLocal(backend), judge_id=job_judge_id(c)))
                c = cfg.model_copy(update={"data": data, "output": fresh("pool 1x2")})
                record("pool 1x2", run_cluster_job(c, progress=False, pool=pool))
        finally:
            pool.close()
            backend.close()
        for name, workers in (("pool 1x1", 1), ("pool 2x1", 2)):
            cfg = job(warm, fresh(name), args.batch_size, args.max_tokens, workers=workers, cpus=1)
            pool = JudgePool(cfg, connect(cfg.cluster))
            pool.start()
            starts[name] = pool.startup_s
            try:
                run_cluster_job(cfg, progress=False, pool=pool)  # warm-up
                for data in sets:
                    c = cfg.model_copy(update={"data": data, "output": fresh(name)})
                    record(name, run_cluster_job(c, progress=False, pool=pool))
            finally:
                pool.close()
    finally:
        ray.shutdown()
    med = {k: statistics.median(v) for k, v in runs.items()}
    return {
        "items": args.items,
        "batch_size": args.batch_size,
        "max_tokens": args.max_tokens,
        "repeats": args.repeats,
        "judgments_per_s": runs,
        "median_judgments_per_s": med,
        "engine_start_s": starts,
        "pool_overhead_vs_single": 1.0 - med["pool 1x2"] / med["single"],
        "scaling_2_vs_1_worker": med["pool 2x1"] / med["pool 1x1"],
        "pool_2x1_vs_single": med["pool 2x1"] / med["single"],
    }


# ----------------------------------------------------------------------------------------------
# Driver memory


def _instant(prompt: Any, params: Any) -> str:
    """A verdict in the requested JSON schema at once: the first allowed value of every field."""
    props = (params.json_schema or {}).get("properties", {})
    return json.dumps({k: p["enum"][0] if "enum" in p else "ok" for k, p in props.items()})


def _hwm_mib() -> float:
    """Peak RSS of this process image (VmHWM; unlike ru_maxrss it does not inherit the parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_child(n: int, work: Path) -> None:
    """One cluster job of ``n`` synthetic items; prints the driver's peak RSS as JSON.

    The peak is also read just before the engine's end-of-job step (pair verdicts and bias
    statistics over the finished output), so the streaming part of the job can be told apart.
    """
    import judge.runner._finish as finish_step
    from cluster import run_cluster_job
    from judge.core._config import JobConfig

    data = work / f"items-{n}.jsonl"
    cfg = JobConfig.model_validate(
        {
            "data": str(data),
            "output": str(work / f"out-{n}" / "judgments.jsonl"),
            "rubrics": ["helpfulness", "instruction_following"],  # a score and a pair in both orders per item
            "judge": {"backend": "scripted", "model": "bundled", "options": {"responder": _instant}},
            "scoring": {"method": "json"},
            "batch_size": 64,
            "cluster": {"enabled": True, "workers": 2, "num_cpus": 1, "max_in_flight": 2},
        }
    )
    import ray  # noqa: F401  (imported before the baseline so it is not counted as the job's growth)

    marks: dict[str, float] = {}
    finish = getattr(finish_step, "finish_job", None)
    if finish is not None:

        def timed_finish(*a: Any, **kw: Any) -> Any:
            marks["before_end_of_job_mib"] = _hwm_mib()
            return finish(*a, **kw)

        finish_step.finish_job = timed_finish
    base = _hwm_mib()
    t0 = time.perf_counter()
    summary = run_cluster_job(cfg, progress=False)
    print(json.dumps({
        "items": n, "judgments": summary.judgments, "new": summary.new_judgments,
        "baseline_rss_mib": base, "peak_rss_mib": _hwm_mib(), **marks, "wall_s": time.perf_counter() - t0,
        "output_mib": Path(cfg.output).stat().st_size / 2**20,
    }))  # fmt: skip


def driver_rss(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"sizes": {}}
    for n in args.rss_sizes:
        write_items(work / f"items-{n}.jsonl", n, pairs=True)
        proc = subprocess.run(
            [sys.executable, __file__, "--rss-child", str(n), "--work", str(work)],
            capture_output=True, text=True, timeout=7200,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"rss run for {n} items failed:\n{proc.stderr[-4000:]}")
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        assert res["new"] == 3 * n, res
        out["sizes"][str(n)] = res
        print(f"  {n:>7} items: peak RSS {res['peak_rss_mib']:.0f} MiB (before the job {res['baseline_rss_mib']:.0f}, "
              f"before the end-of-job step {res.get('before_end_of_job_mib', float('nan')):.0f}), "
              f"{res['wall_s']:.0f}s", flush=True)  # fmt: skip
    sizes = [str(n) for n in args.rss_sizes]
    first, last = out["sizes"][sizes[0]], out["sizes"][sizes[-1]]
    out["peak_ratio_largest_vs_smallest"] = last["peak_rss_mib"] / first["peak_rss_mib"]
    if "before_end_of_job_mib" in first and "before_end_of_job_mib" in last:
        out["streaming_peak_ratio_largest_vs_smallest"] = last["before_end_of_job_mib"] / first["before_end_of_job_mib"]
    return out


# ----------------------------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--items", type=int, default=64, help="items per throughput run")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--rss-sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--skip-rss", action="store_true")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench" / "cluster_scaling.json")
    p.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.rss_child:
        rss_child(args.rss_child, args.work)
        return

    report: dict[str, Any] = {}
    if (args.skip_throughput or args.skip_rss) and args.out.exists():
        report = json.loads(args.out.read_text(encoding="utf-8"))  # keep the part not run now
    report |= {
        "benchmark": "cluster_scaling",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    with tempfile.TemporaryDirectory(prefix="cluster-scaling-") as tmp:
        work = Path(tmp)
        if not args.skip_throughput:
            print("throughput (bundled model, vLLM bf16):", flush=True)
            report["throughput"] = throughput(args, work)
        if not args.skip_rss:
            print("driver peak RSS (scripted workers):", flush=True)
            report["driver_rss"] = driver_rss(args, work)

    lines = ["", "cluster scaling"]
    if "throughput" in report:
        t = report["throughput"]
        med = t["median_judgments_per_s"]
        lines.append(f"  {t['items']} items, batch {t['batch_size']}, max_tokens {t['max_tokens']}, "
                     f"median of {t['repeats']} (bf16 vLLM)")  # fmt: skip
        lines.append(f"  {'system':<10} {'judg/s':>8} {'vs single':>10} {'engine start s':>15}")
        for name, v in med.items():
            lines.append(f"  {name:<10} {v:>8.2f} {v / med['single']:>9.2f}x {t['engine_start_s'][name]:>15.1f}")
        lines.append(f"  pool overhead vs single (1 worker, same cores): {t['pool_overhead_vs_single'] * 100:+.1f}%  (target < 10%)")
        lines.append(f"  2 workers vs 1 worker (one core each): {t['scaling_2_vs_1_worker']:.2f}x")
    if "driver_rss" in report:
        r = report["driver_rss"]
        lines.append(f"  {'items':>8} {'peak RSS MiB':>13} {'before end step':>16} {'at start':>9} {'wall s':>7} {'output MiB':>11}")
        for n, v in r["sizes"].items():
            lines.append(f"  {int(n):>8} {v['peak_rss_mib']:>13.0f} {v.get('before_end_of_job_mib', float('nan')):>16.0f} "
                         f"{v['baseline_rss_mib']:>9.0f} {v['wall_s']:>7.0f} {v['output_mib']:>11.0f}")  # fmt: skip
        lines.append(f"  peak RSS, largest vs smallest: {r['peak_ratio_largest_vs_smallest']:.2f}x  (target <= 1.2x)")
        if "streaming_peak_ratio_largest_vs_smallest" in r:
            lines.append(f"  peak RSS up to the end-of-job step (read, dispatch, write): "
                         f"{r['streaming_peak_ratio_largest_vs_smallest']:.2f}x")  # fmt: skip
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
