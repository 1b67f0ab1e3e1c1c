"""The judging benchmark on two revisions of judgeloop, in one run: did a change make judging slower?

``judge_throughput.py`` of each revision runs in its own process (a fresh engine each time) with
that revision's code first on ``PYTHONPATH``, on the same deterministic items. The two revisions
take turns in an ABBA order (before, after, after, before, ...), so a drift in the shared
machine's load falls on both alike; each revision reports its fastest run per system and the
ratios after/before, per pair of runs and overall.

    python benchmarks/before_after.py --before 8477772^                       # that revision vs this checkout
    python benchmarks/before_after.py --before v1 --after v2 --n 64 --rounds 3
    python benchmarks/before_after.py --before 8477772^ --after-args="--block-size 128 --no-floor"

``--before-args`` / ``--after-args`` go to the respective revision's ``judge_throughput.py`` (an
older script may lack a newer flag), ``--args`` to both. A revision is checked out with ``git
worktree`` into a scratch folder that is removed at the end; ``--after`` defaults to this checkout
as it is on disk.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parent.parent
SYSTEMS = ("vllm", "hf")


def _worktree(rev: str, scratch: Path) -> Path:
    path = scratch / rev.replace("/", "_").replace("^", "_parent").replace("~", "_")
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(path), rev], check=True)
    return path


def _commit(tree: Path) -> str:
    out = subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    dirty = subprocess.run(["git", "-C", str(tree), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    return out.stdout.strip()[:12] + ("+local changes" if dirty else "")


def _run(tree: Path, args: list[str], out: Path) -> dict[str, Any]:
    """One ``judge_throughput.py`` process of ``tree``; its JSON."""
    env = dict(os.environ, PYTHONPATH=str(tree) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, str(tree / "benchmarks" / "judge_throughput.py"), *args, "--out", str(out)]
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    subprocess.run(cmd, cwd=tree, env=env, check=True)
    return json.loads(out.read_text())


def _rate(result: dict[str, Any], system: str) -> float | None:
    r = result.get("results", {}).get(system)
    return None if r is None else float(r["judgments_per_s"])


def summarise(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Fastest rate per revision and system, and the ratios after/before (overall and per pair)."""
    out: dict[str, Any] = {"systems": {}}
    for system in SYSTEMS:
        rates = {side: [x for x in (_rate(r, system) for r in runs[side]) if x is not None] for side in runs}
        if not rates["before"] or not rates["after"]:
            continue
        best = {side: max(v) for side, v in rates.items()}
        pairs = [round(a / b, 3) for b, a in zip(rates["before"], rates["after"])]
        out["systems"][system] = {
            "judgments_per_s": {side: [round(x, 3) for x in v] for side, v in rates.items()},
            "fastest": {side: round(x, 3) for side, x in best.items()},
            "after_over_before": round(best["after"] / best["before"], 3),
            "after_over_before_per_round": pairs,
        }
    return out


def table(summary: dict[str, Any], labels: dict[str, str]) -> str:
    rows = [f"| system | before ({labels['before']}) /s | after ({labels['after']}) /s | after / before | per round |",
            "|---|---:|---:|---:|---|"]  # fmt: skip
    for system, s in summary["systems"].items():
        rows.append(f"| {system} | {s['fastest']['before']:.2f} | {s['fastest']['after']:.2f} | "
                    f"{s['after_over_before']:.2f}x | "
                    + ", ".join(f"{x:.2f}x" for x in s["after_over_before_per_round"]) + " |")  # fmt: skip
    return "\n".join(rows)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])  # fmt: skip
    p.add_argument("--before", required=True, help="The older revision (any git revision).")
    p.add_argument("--after", default=None, help="The newer revision (default: this checkout as it is on disk).")
    p.add_argument("--rounds", type=int, default=2, help="Runs of each revision, in ABBA order (default 2).")
    p.add_argument("--n", type=int, default=128, help="Judgments per system per run (default 128).")
    p.add_argument("--skip", action="append", default=[], choices=list(SYSTEMS), help="Skip a system.")
    p.add_argument("--args", default="", help="More flags for both revisions' judge_throughput.py.")
    p.add_argument("--before-args", default="", help="More flags for the older revision only.")
    p.add_argument("--after-args", default="", help="More flags for the newer revision only.")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench" / "before_after.json", help="JSON output.")
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    a = parser().parse_args(argv)
    common = ["--n", str(a.n), "--skip", "naive", *[f"--skip={s}" for s in a.skip], *shlex.split(a.args)]
    extra = {"before": shlex.split(a.before_args), "after": shlex.split(a.after_args)}
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="jl-before-after-") as scratch_dir:
        scratch = Path(scratch_dir)
        trees = {"before": _worktree(a.before, scratch),
                 "after": ROOT if a.after is None else _worktree(a.after, scratch)}  # fmt: skip
        try:
            labels = {"before": a.before, "after": a.after or "this checkout"}
            commits = {side: _commit(t) for side, t in trees.items()}
            runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
            order = [("before", "after"), ("after", "before")]
            started = time.perf_counter()
            for r in range(a.rounds):
                for side in order[r % 2]:
                    res = _run(trees[side], common + extra[side], scratch / f"{side}-{r}.json")
                    runs[side].append(res)
            wall = time.perf_counter() - started
        finally:
            for side, t in trees.items():
                if t != ROOT:
                    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(t)], check=False)
    summary = summarise(runs)
    load_end = os.getloadavg()
    print()
    print(table(summary, labels))
    print(f"\nrevisions: before {labels['before']} = {commits['before']}, after {labels['after']} = {commits['after']}; "
          f"{a.rounds} runs each, ABBA; load average {load_start[0]:.1f} at start, {load_end[0]:.1f} at end; "
          f"{wall:.0f} s")  # fmt: skip
    out = {
        "benchmark": "before_after",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "revisions": {side: {"rev": labels[side], "commit": commits[side]} for side in labels},
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
        "load_average_1m": {"start": round(load_start[0], 2), "end": round(load_end[0], 2)},
        "wall_s": round(wall, 1),
        **summary,
        "runs": {side: [{"results": r.get("results"), "prefill_floor": r.get("prefill_floor")} for r in rs]
                 for side, rs in runs.items()},  # fmt: skip
    }
    from judge.core._io import atomic_write

    a.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(a.out, json.dumps(out, indent=2) + "\n")
    print(f"wrote {a.out}")
    return out


if __name__ == "__main__":
    main()
