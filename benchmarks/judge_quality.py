"""Judge quality and cost: single-order JSON verdicts vs both orders (strict / averaged logprobs),
and logprob pointwise scoring vs JSON with a rationale, on the shipped labelled sets.

    python benchmarks/judge_quality.py                       # vLLM, the bundled model
    python benchmarks/judge_quality.py --backend hf --repeats 1

Every configuration runs on the same loaded engine, chunk by chunk (``--chunk`` items),
interleaved with the others so that load from other processes hits all of them alike; before each
chunk the prefix cache is emptied and warmed with one request outside the set (no configuration
profits from another's cached prompts). ``--repeats`` timed passes; a configuration's time is the
least of its passes' summed judge time (load from other processes only ever adds time). Quality comes from the first pass's judgments. Prints a table and writes
JSON (timings as ratios to the baselines measured in the same run), with a token account of the
prompt tokens a prefix cache cannot serve, which predicts the both-orders ratio.

Pairwise (``tests/data/pairs_labelled.jsonl``):
  (a) one order (AB), JSON verdict               - the usual single-order judge
  (a') one order (AB), logprob verdict           - the single-order baseline of the same method
  (b) both orders, logprob verdicts, strict      - a winner only when both orders agree
  (c) both orders, averaged P(A wins)            - tie band from the config (and one fitted on
                                                   the same set, reported as such: optimistic)
Pointwise (``tests/data/points_labelled.jsonl``):
  logprob (one token per criterion) vs JSON with a rationale, same rubric otherwise.
Targets: (b) costs <= 1.3x (a'); logprob pointwise >= 3x faster than JSON with a rationale.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAIRS = ROOT / "tests" / "data" / "pairs_labelled.jsonl"
POINTS = ROOT / "tests" / "data" / "points_labelled.jsonl"


def _reset_cache(backend) -> None:
    llm = getattr(backend, "llm", None)
    if llm is not None and hasattr(llm, "reset_prefix_cache"):
        llm.reset_prefix_cache()


def _rationale_rubric(base: str, workdir: Path) -> Path:
    """The same rubric asking for a rationale before the verdict."""
    import yaml

    from judge.inputs._rubric import resolve_rubric

    r = resolve_rubric(base)
    data = r.model_dump(mode="json", exclude_defaults=True)
    data["id"] = f"{r.id}-rationale"
    data["rationale"] = True
    path = workdir / f"{r.id}-rationale.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _kind(data: Path) -> str:
    return "pairwise" if "pairs" in data.stem else "pointwise"


def _chunks(data: Path, size: int, workdir: Path) -> list[Path]:
    """The items of a labelled set, as item files of ``size`` rows each."""
    from judge.eval import read_labelled
    from judge.eval._run import _items

    kind, rows, _ = read_labelled(data)
    items = _items(kind, rows)
    out = []
    for i in range(0, len(items), size):
        p = workdir / "chunks" / f"{data.stem}-{i // size}.jsonl"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("".join(it.model_dump_json() + "\n" for it in items[i : i + size]), encoding="utf-8")
        out.append(p)
    return out


def _warm_items(workdir: Path) -> dict[str, Path]:
    """One item of each kind outside the labelled sets: warms the rubric prompt in the cache."""
    rows = {
        "pairwise": {"id": "warm", "prompt": "Say hello.", "response_a": "Hello.", "response_b": "Hi there.",
                     "reference": "Hello."},
        "pointwise": {"id": "warm", "prompt": "Say hello.", "response": "Hello.", "reference": "Hello."},
    }
    out = {}
    for kind, row in rows.items():
        p = workdir / f"warm-{kind}.jsonl"
        p.write_text(json.dumps(row) + "\n", encoding="utf-8")
        out[kind] = p
    return out


def _long_context_only(args, configs, times, work) -> int:
    med = {k: min(v) for k, v in times.items()}  # interference from other processes only adds time
    acc = {k: uncached_tokens(configs[k][1], configs[k][0]) for k in configs}
    result = {
        "long_context_words": args.long_context,
        "repeats": args.repeats,
        "judge_s": {k: round(v, 3) for k, v in med.items()},
        "timings_s": times,
        "ratio_both_over_single": round(med["L_both_logprob"] / med["L_single_logprob"], 3),
        "predicted_from_uncached_tokens": round(acc["L_both_logprob"]["uncached_tokens"] / acc["L_single_logprob"]["uncached_tokens"], 3),
        "token_accounting": acc,
    }
    result["target_at_most_1.3x"] = result["ratio_both_over_single"] <= 1.3
    out = Path(args.out).with_name(Path(args.out).stem + f"_context{args.long_context}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"both orders vs one order with a {args.long_context}-word context per question (best of {args.repeats} passes):")
    print(f"  one order {med['L_single_logprob']:.2f}s, both orders {med['L_both_logprob']:.2f}s: "
          f"ratio {result['ratio_both_over_single']} (predicted from uncached prompt tokens {result['predicted_from_uncached_tokens']})")
    print(f"  wrote {out}")
    return 0


def _with_context(path: Path, words: int, workdir: Path) -> Path:
    """The labelled pairs, each question preceded by its own deterministic context passage."""
    import random

    vocab = (
        "the report notes that a committee reviewed several proposals during the spring and found "
        "clear differences in cost schedule quality risk and expected benefit for local residents while "
        "engineers measured river levels rainfall traffic and energy use across three districts"
    ).split()
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        rng = random.Random(r["id"])
        passage = " ".join(rng.choice(vocab) for _ in range(words))
        r["prompt"] = f"Context:\n{passage}.\n\nQuestion: {r['prompt']}"
        rows.append(json.dumps(r))
    out = workdir / f"{path.stem}-context{words}.jsonl"
    out.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return out


def uncached_tokens(cfg, data: Path, block: int = 16) -> dict:
    """Prompt tokens a prefix cache of ``block``-token blocks cannot serve, for the requests of
    ``cfg`` on ``data`` in dispatch order: the cost model of the both-orders ratio."""
    from transformers import AutoTokenizer

    from judge.backends._chat import render_chat_ids
    from judge.eval import read_labelled
    from judge.eval._run import _items
    from judge.backends._models import resolve_model
    from judge.scoring import Judge

    tok = AutoTokenizer.from_pretrained(resolve_model(cfg.judge.model))
    kind, rows, _ = read_labelled(data)
    seen: set[tuple[int, ...]] = set()
    total = fresh = n = 0
    judge = Judge.from_spec(cfg)
    for item in _items(kind, rows):
        for req in judge.requests(item):
            ids = render_chat_ids(tok, req.messages)
            cached = 0
            for end in range(block, len(ids) + 1, block):
                key = tuple(ids[:end])
                if key in seen:
                    cached = end
                else:
                    break
            for end in range(block, len(ids) + 1, block):
                seen.add(tuple(ids[:end]))
            total += len(ids)
            fresh += len(ids) - cached
            n += 1
    return {"requests": n, "prompt_tokens": total, "uncached_tokens": fresh, "uncached_per_request": round(fresh / n, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", default="vllm")
    ap.add_argument("--model", default="bundled")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--pair-rubric", default="instruction_following")
    ap.add_argument("--point-rubric", default="helpfulness")
    ap.add_argument("--repeats", type=int, default=3, help="Timed passes over the sets.")
    ap.add_argument("--chunk", type=int, default=10, help="Items per interleaved timing chunk.")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--max-tokens", type=int, default=256, help="Most tokens a JSON verdict (with a rationale) may use (the job default).")
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench" / "judge_quality.json"))
    ap.add_argument(
        "--long-context", type=int, default=0, metavar="WORDS",
        help="Also measure one order vs both orders on the pairs with a distinct context of this many "
        "words before each question (the regime of document-grounded judging).",
    )
    ap.add_argument("--only-long-context", action="store_true", help="Measure only the --long-context pair of runs.")
    args = ap.parse_args(argv)
    if args.only_long_context and args.long_context <= 0:
        ap.error("--only-long-context needs --long-context WORDS")

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from judge.core._env import apply_runtime_defaults

    apply_runtime_defaults()
    from judge.backends import create_backend
    from judge.core._config import JobConfig
    from judge.runner._engine import run_job
    from judge.eval import run_eval
    from judge.backends._models import resolve_model

    work = Path(tempfile.mkdtemp(prefix="judge-quality-"))
    model = resolve_model(args.model)
    opts = {"dtype": args.dtype}
    if args.backend == "vllm":
        opts.update(enforce_eager=True, max_model_len=4096)
    t0 = time.perf_counter()
    backend = create_backend(args.backend, model=model, **opts)
    load_s = time.perf_counter() - t0
    rationale = _rationale_rubric(args.point_rubric, work)

    def job(rubric: str, **kw) -> JobConfig:
        base = dict(
            data=PAIRS, output=work / "unused.jsonl", rubrics=[rubric],
            judge={"backend": args.backend, "model": args.model, "options": opts},
            sampling={"max_tokens": args.max_tokens},
        )
        base.update(kw)
        return JobConfig(**base)

    configs = {
        "a_single_json": (PAIRS, job(args.pair_rubric, pairwise_orders="AB", scoring={"method": "json"})),
        "a1_single_logprob": (PAIRS, job(args.pair_rubric, pairwise_orders="AB", scoring={"method": "logprob"})),
        "b_both_logprob_strict": (PAIRS, job(args.pair_rubric, scoring={"method": "logprob", "pairwise_policy": "strict"})),
        "d_both_json_strict": (PAIRS, job(args.pair_rubric, scoring={"method": "json", "pairwise_policy": "strict"})),
        "p_logprob": (POINTS, job(args.point_rubric, scoring={"method": "logprob"})),
        "p_json_rationale": (POINTS, job(str(rationale), scoring={"method": "json"})),
    }
    if args.long_context > 0:
        long_pairs = _with_context(PAIRS, args.long_context, work)
        configs["L_single_logprob"] = (long_pairs, job(args.pair_rubric, pairwise_orders="AB", scoring={"method": "logprob"}))
        configs["L_both_logprob"] = (long_pairs, job(args.pair_rubric, scoring={"method": "logprob"}))
    if args.only_long_context:
        configs = {k: v for k, v in configs.items() if k.startswith("L_")}
    times: dict[str, list[float]] = {k: [] for k in configs}
    reports: dict[str, dict] = {}
    names = list(configs)
    chunks = {data: _chunks(data, args.chunk, work) for data, _ in configs.values()}
    warm_items = _warm_items(work)
    # Timing on a shared machine: every configuration runs chunk by chunk, interleaved with the
    # others (rotating which goes first), so a load spike hits all of them alike. Before each chunk
    # the prefix cache is emptied and warmed with one request on an item outside the set: every
    # chunk starts from the same state (rubric prompt cached, no item cached).
    for rep in range(args.repeats):
        spent = {k: 0.0 for k in names}
        n_chunks = max(len(c) for c in chunks.values())
        for ci in range(n_chunks):
            shift = (rep + ci) % len(names)
            for name in names[shift:] + names[:shift]:
                data, cfg = configs[name]
                if ci >= len(chunks[data]):
                    continue
                _reset_cache(backend)
                warm = cfg.model_copy(update={"data": warm_items[_kind(data)], "output": work / "warm" / f"{name}-{rep}-{ci}.jsonl"})
                run_job(warm, backend=backend, progress=False)
                out = work / f"{name}-{rep}" / "judgments.jsonl"
                chunk_cfg = cfg.model_copy(update={"data": chunks[data][ci], "output": out})
                spent[name] += run_job(chunk_cfg, backend=backend, progress=False).judge_s
        for name in names:
            times[name].append(spent[name])
            print(f"  run {rep + 1}/{args.repeats} {name:<24} {spent[name]:7.2f}s", file=sys.stderr)
    for name in names:  # quality from the first pass's judgments (all resumed: no new work)
        data, cfg = configs[name]
        reports[name] = run_eval(cfg, data, work / f"{name}-0", backend=backend, progress=False, bootstrap=args.bootstrap).to_json()
        reports[name]["timing"]["new_judgments"] = sum(
            1 for _ in (work / f"{name}-0" / "judgments.jsonl").open(encoding="utf-8")
        )
    if args.only_long_context:
        backend.close()
        return _long_context_only(args, configs, times, work)
    # (c): the judgments of (b), combined by averaged probabilities (config band, then fitted band).
    _, bcfg = configs["b_both_logprob_strict"]
    avg_cfg = bcfg.model_copy(update={"scoring": bcfg.scoring.model_copy(update={"pairwise_policy": "average-probability"})})
    reports["c_both_logprob_average"] = run_eval(
        avg_cfg, PAIRS, work / "b_both_logprob_strict-0", backend=backend, progress=False, bootstrap=args.bootstrap
    ).to_json()
    fit = reports["c_both_logprob_average"]["judges"][args.pair_rubric].get("tie_threshold_fit")
    if fit:
        fitted_cfg = avg_cfg.model_copy(
            update={"scoring": avg_cfg.scoring.model_copy(update={"tie_threshold": fit["tie_threshold"]})}
        )
        reports["c_fitted_band"] = run_eval(
            fitted_cfg, PAIRS, work / "b_both_logprob_strict-0", backend=backend, progress=False, bootstrap=args.bootstrap
        ).to_json()
    times["c_both_logprob_average"] = times["b_both_logprob_strict"]
    if "c_fitted_band" in reports:
        times["c_fitted_band"] = times["b_both_logprob_strict"]
    backend.close()

    med = {k: min(v) for k, v in times.items()}  # interference from other processes only adds time
    n_judg = {k: r["timing"]["new_judgments"] for k, r in reports.items() if r.get("timing")}
    n_judg["c_both_logprob_average"] = n_judg["b_both_logprob_strict"]
    if "c_fitted_band" in reports:
        n_judg["c_fitted_band"] = n_judg["b_both_logprob_strict"]
    rows = []
    labels = {
        "a_single_json": "(a) one order, JSON verdict",
        "a1_single_logprob": "(a') one order, logprob verdict",
        "b_both_logprob_strict": "(b) both orders, strict",
        "c_both_logprob_average": "(c) both orders, mean P(A wins)",
        "c_fitted_band": "(c) same, tie band fitted here*",
        "d_both_json_strict": "(d) both orders, JSON, strict",
    }
    for key, label in labels.items():
        if key not in reports:
            continue
        m = reports[key]["judges"][args.pair_rubric]
        rows.append(
            {
                "config": key,
                "label": label,
                "accuracy": m["accuracy"],
                "accuracy_no_ties": m["accuracy_no_ties"],
                "kappa": m["kappa"],
                "swap_consistency": m.get("swap_consistency"),
                "first_shown_win_rate": (m.get("position") or {}).get("first_shown_win_rate"),
                "judge_s": round(med[key], 3),
                "judgments": n_judg[key],
                "items_per_s": round(m["n"] / med[key], 3),
                "judgments_per_s": round(n_judg[key] / med[key], 3),
                "tie_threshold": reports[key]["scoring"]["tie_threshold"] if "average" in reports[key]["scoring"]["pairwise_policy"] else None,
            }
        )
    pm = {k: reports[k]["judges"][Path(configs[k][1].rubrics[0]).stem if k == "p_json_rationale" else args.point_rubric] for k in ("p_logprob", "p_json_rationale")}
    ratios = {
        "both_orders_logprob_over_single_logprob": round(med["b_both_logprob_strict"] / med["a1_single_logprob"], 3),
        "both_orders_json_over_single_json": round(med["d_both_json_strict"] / med["a_single_json"], 3),
        "both_orders_logprob_over_single_json": round(med["b_both_logprob_strict"] / med["a_single_json"], 3),
        "json_rationale_over_logprob_pointwise": round(med["p_json_rationale"] / med["p_logprob"], 3),
    }
    if "L_both_logprob" in med:
        ratios["long_context_both_over_single_logprob"] = round(med["L_both_logprob"] / med["L_single_logprob"], 3)
    prompt_tokens = {
        k: reports[k]["timing"] for k in configs
    }
    acc_keys = [k for k in ("a1_single_logprob", "b_both_logprob_strict", "L_single_logprob", "L_both_logprob") if k in configs]
    accounting = {k: uncached_tokens(configs[k][1], configs[k][0]) for k in acc_keys}
    accounting["predicted_both_over_single"] = round(
        accounting["b_both_logprob_strict"]["uncached_tokens"] / accounting["a1_single_logprob"]["uncached_tokens"], 3
    )
    if "L_both_logprob" in accounting:
        accounting["predicted_long_context_both_over_single"] = round(
            accounting["L_both_logprob"]["uncached_tokens"] / accounting["L_single_logprob"]["uncached_tokens"], 3
        )
    result = {
        "token_accounting": accounting,
        "backend": args.backend,
        "model": model,
        "dtype": args.dtype,
        "engine_load_s": round(load_s, 1),
        "repeats": args.repeats,
        "pairwise": rows,
        "pointwise": {
            k: {
                "judge_s": round(med[k], 3),
                "judgments_per_s": round(reports[k]["timing"]["new_judgments"] / med[k], 3),
                "spearman": pm[k]["spearman"],
                "kappa_quadratic": pm[k]["kappa_quadratic"],
                "accuracy": pm[k]["accuracy"],
                "coverage": pm[k]["coverage"],
            }
            for k in ("p_logprob", "p_json_rationale")
        },
        "ratios": ratios,
        "targets": {
            "both_orders_at_most_1.3x_single": ratios["both_orders_logprob_over_single_logprob"] <= 1.3,
        **(
            {"long_context_both_orders_at_most_1.3x_single": ratios["long_context_both_over_single_logprob"] <= 1.3}
            if "long_context_both_over_single_logprob" in ratios
            else {}
        ),
            "logprob_at_least_3x_faster_than_json_rationale": ratios["json_rationale_over_logprob_pointwise"] >= 3.0,
        },
        "timings_s": times,
        "timing_detail": prompt_tokens,
        "workdir": str(work),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

    def pct(s):
        v = s["value"] if isinstance(s, dict) else s
        return "  n/a " if v is None else f"{100 * v:5.1f}%"

    def num(s):
        v = s["value"] if isinstance(s, dict) else s
        return "  n/a" if v is None else f"{v:5.2f}"

    print(f"judge quality  {args.backend} {Path(model).name} {args.dtype}  pairs: {PAIRS.name}  "
          f"(best of {args.repeats} interleaved passes; * fitted on the evaluated set itself)")
    print(f"  {'configuration':<34} {'acc':>7} {'acc¬tie':>8} {'kappa':>6} {'swap-c':>7} {'1st-win':>8} {'judge s':>8} {'judg/s':>7} {'x (a)':>6}")
    base = med["a_single_json"]
    for r in rows:
        print(
            f"  {r['label']:<34} {pct(r['accuracy'])} {pct(r['accuracy_no_ties']):>8} {num(r['kappa']):>6} "
            f"{pct(r['swap_consistency']) if r['swap_consistency'] is not None else '   -  ':>7} "
            f"{pct(r['first_shown_win_rate']) if r['first_shown_win_rate'] is not None else '  -':>8} "
            f"{r['judge_s']:8.2f} {r['judgments_per_s']:7.2f} {r['judge_s'] / base:6.2f}"
        )
    print(f"  pointwise ({args.point_rubric}, {POINTS.name}):")
    for k, label in (("p_logprob", "logprob, 1 token per criterion"), ("p_json_rationale", "JSON with a rationale")):
        p = result["pointwise"][k]
        print(f"    {label:<32} {p['judge_s']:7.2f}s  {p['judgments_per_s']:6.2f} judg/s  Spearman {num(p['spearman'])}  "
              f"kappa(q) {num(p['kappa_quadratic'])}  coverage {pct(p['coverage'])}")
    print("  ratios: " + ", ".join(f"{k} {v}" for k, v in ratios.items()))
    acc = result["token_accounting"]
    print(
        f"  prompt tokens a prefix cache cannot serve: one order {acc['a1_single_logprob']['uncached_tokens']}, "
        f"both orders {acc['b_both_logprob_strict']['uncached_tokens']} (ratio {acc['predicted_both_over_single']}; "
        f"{acc['a1_single_logprob']['uncached_per_request']} per single-order request)"
    )
    if "predicted_long_context_both_over_single" in acc:
        print(
            f"  with a {args.long_context}-word context per question: one order {acc['L_single_logprob']['uncached_tokens']}, "
            f"both orders {acc['L_both_logprob']['uncached_tokens']} (ratio {acc['predicted_long_context_both_over_single']}); "
            f"measured {ratios['long_context_both_over_single_logprob']}"
        )
    print("  targets: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in result["targets"].items()))
    print(f"  wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
