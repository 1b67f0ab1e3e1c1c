"""Verdict noise: how far batch composition moves the verdict-token logprobs on vLLM.

The same judge requests, built by the product's normal path (``build_requests`` on the labelled
pairs of ``tests/data/pairs_labelled.jsonl`` in both orders, ``instruction_following``, and the
labelled points of ``tests/data/points_labelled.jsonl``, ``helpfulness``), go through one vLLM
engine in two batch compositions:

- ``cold``: the prefix cache emptied, the pairs in one call in file order, then the points in
  another call;
- ``mixed``: the prefix cache warm, the pairs and points interleaved in a seeded shuffle and sent in
  calls of ``--mixed-batch`` requests, so every request has other neighbours, other batch sizes and
  a prefix read from the cache instead of computed with it.

For every request the logprobs at the verdict token (the first generated token of the prefilled
answer) are compared: the largest change of any candidate's logprob present in both runs, of the
logit margin between the two best verdict values (what decides a verdict), and the verdicts that
flip. Each dtype runs in its own engine in the same process; the cold pass is also timed, so the
cost of a dtype is a ratio measured in the same run.

    python benchmarks/verdict_noise.py                            # bf16 and float32 -> runs/bench/verdict_noise.json
    python benchmarks/verdict_noise.py --dtype bfloat16 --repeats 3
    python benchmarks/verdict_noise.py --batch-invariant          # also try VLLM_BATCH_INVARIANT=1

Run it on an otherwise idle machine: another engine on the same cores moves its timings.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _requests(model: str, rubric_id: str, path: Path) -> list[tuple[Any, Any]]:
    """The judge requests of a labelled file, built by :class:`judge.Judge` (logprob verdicts)."""
    from judge.core._config import ScoringConfig
    from judge.core._records import Item
    from judge.scoring import Judge

    judge = Judge(rubric_id, "vllm", model=model, scoring=ScoringConfig(method="logprob"), pairwise_orders="both")
    rubric = judge.rubrics[0]
    out = []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        item = Item.model_validate({k: v for k, v in row.items() if k in Item.model_fields})
        out.extend((rubric, r) for r in judge.requests(item))
    return out


def _verdict_token(completion: Any) -> dict[str, float]:
    return dict(completion.tokens[0].top) if completion.tokens else {}


def _judge(backend: Any, info: Any, reqs: list[tuple[Any, Any]], batch: int | None) -> tuple[dict[str, Any], float]:
    """Judge ``reqs`` in calls of ``batch`` (all at once if None): {key: (judgment, top logprobs)}."""
    from judge.scoring import judgment_from

    out: dict[str, Any] = {}
    size = batch or len(reqs)
    t0 = time.perf_counter()
    for k in range(0, len(reqs), size):
        chunk = reqs[k : k + size]
        comps = backend.generate([r.messages for _, r in chunk], [r.sampling for _, r in chunk])
        for (rubric, r), c in zip(chunk, comps):
            out[r.key] = (judgment_from(r, rubric, c, info, 0.0), _verdict_token(c))
    return out, time.perf_counter() - t0


def _top_two_gap(top: dict[str, float], values: list[str]) -> float | None:
    """Logit margin (logprob difference) between the two best verdict values at the token."""
    lps = sorted((lp for tok, lp in top.items() if tok.strip().strip('"') in values), reverse=True)
    return lps[0] - lps[1] if len(lps) >= 2 else None


def _verdict(j: Any) -> Any:
    return j.winner if j.kind == "pairwise" else (tuple(sorted((j.scores or {}).items())) or None)


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Largest logprob and margin changes between two runs of the same requests, and flips."""
    max_lp, max_gap, flips, noisy, n = 0.0, 0.0, [], 0, 0
    gaps: list[float] = []
    for key, (ja, ta) in a.items():
        jb, tb = b[key]
        n += 1
        for tok in set(ta) & set(tb):
            if math.isfinite(ta[tok]) and math.isfinite(tb[tok]):
                max_lp = max(max_lp, abs(ta[tok] - tb[tok]))
        values = ["A", "B", "tie"] if ja.kind == "pairwise" else [str(v) for v in range(0, 11)]
        ga, gb = _top_two_gap(ta, values), _top_two_gap(tb, values)
        if ga is not None and gb is not None:
            max_gap = max(max_gap, abs(ga - gb))
            gaps.append(min(ga, gb))
        if _verdict(ja) != _verdict(jb):
            flips.append({"key": key[:12], "item": ja.item_id, "order": ja.order, "a": str(_verdict(ja)),
                          "b": str(_verdict(jb)), "margin_a": ga, "margin_b": gb})  # fmt: skip
        if ja.extra.get("within_noise") or jb.extra.get("within_noise"):
            noisy += 1
    return {
        "requests": n,
        "max_abs_delta_logprob": round(max_lp, 5),
        "max_abs_delta_margin": round(max_gap, 5),
        "smallest_margin": round(min(gaps), 5) if gaps else None,
        "verdict_flips": len(flips),
        "flips": flips,
        "within_noise": noisy,
    }


def measure(
    dtype: str, args: argparse.Namespace, reqs: list[tuple[Any, Any]], env: dict[str, str], options: dict[str, Any],
    single: bool = False,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One engine: its cold pass, compared with its mixed (and single-request) passes.

    Returns the record and the cold pass's judgments (None if the engine failed).
    """
    from judge.backends import create_backend
    from judge.backends._models import resolve_model

    from judge.core._env import temporary_env

    label = {"dtype": dtype, "env": env, "options": options}
    t0 = time.perf_counter()
    try:
        with temporary_env(env):
            backend = create_backend("vllm", model=resolve_model(args.model), dtype=dtype, max_model_len=2048, **options)
    except Exception as exc:  # a mode the platform does not support: record why
        return {**label, "error": f"{type(exc).__name__}: {exc}"[:2000]}, None
    start_s = time.perf_counter() - t0
    results: list[dict[str, Any]] = []
    first_cold: dict[str, Any] | None = None
    try:
        info = backend.info()
        pairs = [x for x in reqs if x[1].kind == "pairwise"]
        points = [x for x in reqs if x[1].kind != "pairwise"]
        _judge(backend, info, reqs[:4], None)  # warm-up, so the timed pass is not the first call
        for rep in range(args.repeats):
            backend.llm.reset_prefix_cache()
            cold_p, tp = _judge(backend, info, pairs, None)
            cold_q, tq = _judge(backend, info, points, None)
            cold = {**cold_p, **cold_q}
            first_cold = first_cold or cold
            mixed_reqs = list(reqs)
            random.Random(args.seed + rep).shuffle(mixed_reqs)
            mixed, tm = _judge(backend, info, mixed_reqs, args.mixed_batch)
            res = {"vs": "mixed", **compare(cold, mixed)}
            res.update(cold_s=round(tp + tq, 3), judgments_per_s=round(len(reqs) / (tp + tq), 3))
            results.append(res)
            if single and rep == 0:
                alone, _ = _judge(backend, info, list(reversed(reqs)), 1)
                results.append({"vs": "single", **compare(cold, alone)})
            for r in results[-2:]:
                print(f"{dtype} {env or ''} {options or ''}: " + json.dumps({k: v for k, v in r.items() if k != "flips"}),
                      file=sys.stderr, flush=True)  # fmt: skip
    except Exception as exc:  # e.g. a mode that starts but fails at its first step
        return {**label, "engine_start_s": round(start_s, 1), "error": f"{type(exc).__name__}: {exc}"[:2000]}, None
    finally:
        backend.close()
    return {**label, "engine_start_s": round(start_s, 1), "repeats": results}, first_cold


def _name(r: dict[str, Any]) -> str:
    extra = [f"{k}={v}" for k, v in {**r["env"], **r["options"]}.items()]
    return r["dtype"] + (" " + " ".join(extra) if extra else "")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dtype", action="append", choices=["bfloat16", "float32"], help="Dtype(s) to measure (default both).")
    p.add_argument("--model", default="bundled", help="Judge model directory or 'bundled'.")
    p.add_argument("--repeats", type=int, default=1, help="Cold/mixed comparisons per engine (default 1).")
    p.add_argument("--mixed-batch", type=int, default=7, help="Requests per call in the mixed composition (default 7).")
    p.add_argument("--seed", type=int, default=0, help="Seed of the mixed composition's shuffle.")
    p.add_argument("--batch-invariant", action="store_true", help="Also try VLLM_BATCH_INVARIANT=1 (bf16).")
    p.add_argument("--variants", action="store_true",
                   help="Also bf16 engines with other step sizes and threads, compared with the first bf16 engine.")  # fmt: skip
    p.add_argument("--out", default=str(ROOT / "runs" / "bench" / "verdict_noise.json"), help="JSON output.")
    args = p.parse_args(argv)
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from judge.backends._models import resolve_model

    model = resolve_model(args.model)
    reqs = _requests(model, "instruction_following", ROOT / "tests" / "data" / "pairs_labelled.jsonl")
    reqs += _requests(model, "helpfulness", ROOT / "tests" / "data" / "points_labelled.jsonl")
    runs: list[dict[str, Any]] = []
    cold_by_dtype: dict[str, dict[str, Any]] = {}
    plans: list[tuple[str, dict[str, str], dict[str, Any]]] = [(d, {}, {}) for d in (args.dtype or ["bfloat16", "float32"])]
    if args.variants:
        plans += [("bfloat16", {}, {"max_num_batched_tokens": 512}), ("bfloat16", {}, {"max_num_seqs": 8}),
                  ("bfloat16", {"VLLM_CPU_OMP_THREADS_BIND": "0"}, {})]  # fmt: skip
    if args.batch_invariant:
        plans.append(("bfloat16", {"VLLM_BATCH_INVARIANT": "1"}, {}))
    for dtype, env, options in plans:
        rec, cold = measure(dtype, args, reqs, env, options, single=not env and not options)
        if cold is not None:
            if dtype in cold_by_dtype:  # another engine of this dtype: against the first one's cold pass
                rec["vs_first_engine"] = compare(cold_by_dtype[dtype], cold)
                print(f"{_name(rec)} vs the first {dtype} engine: "
                      + json.dumps({k: v for k, v in rec["vs_first_engine"].items() if k != "flips"}), file=sys.stderr)  # fmt: skip
            else:
                cold_by_dtype[dtype] = cold
        runs.append(rec)
    speed = {_name(r): max(x.get("judgments_per_s", 0.0) for x in r["repeats"]) for r in runs if "repeats" in r}
    out = {"benchmark": "verdict_noise", "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "requests": len(reqs),
           "config": {k: v for k, v in vars(args).items() if k != "out"}, "runs": runs, "judgments_per_s": speed,
           "load_average_1m_end": os.getloadavg()[0]}  # fmt: skip
    from judge.core._io import atomic_write

    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(out, indent=2) + "\n")
    print()
    for r in runs:
        if "error" in r:
            print(f"{_name(r)}: failed: {r['error'][:300]}")
            continue
        rows = [(x["vs"], x) for x in r["repeats"]] + ([("first engine", r["vs_first_engine"])] if "vs_first_engine" in r else [])
        for vs, x in rows:
            print(f"{_name(r):<44} cold vs {vs:<12}: max|dlogprob| {x['max_abs_delta_logprob']:.4f}  "
                  f"max|dmargin| {x['max_abs_delta_margin']:.4f}  flips {x['verdict_flips']}/{x['requests']}  "
                  f"within noise {x['within_noise']}")  # fmt: skip
    print("judgments/s (cold pass, same run): " + ", ".join(f"{k} {v:.2f}" for k, v in speed.items()))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
