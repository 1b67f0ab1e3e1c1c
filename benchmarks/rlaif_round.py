"""One RLAIF round, stage by stage: generate -> judge -> prefs -> train, and the judge's share of it.

The bundled model is both policy and judge (one vLLM engine serves both, so the engine starts once;
its start is reported apart). 64 prompts (the 16 of ``examples/prompts.jsonl`` in four framings)
x 4 sampled candidates; the judge scores every candidate by ``helpfulness`` (pointwise, logprob
verdict); preferences are best-vs-worst per prompt; DPO trains the policy for ``--train-steps``
steps on CPU (float32). Every stage runs through the product's own functions (the ones ``judgeloop
generate | judge | prefs build | train dpo`` call) into a fresh directory, so nothing is cached.

Timings are reported as shares of the round measured in this run (the machines are shared: read
the ratios). With ``--reward`` the script also runs ``benchmarks/reward_throughput.py`` (the judge
as a GRPO reward function against calling transformers directly for the same scores).

    python benchmarks/rlaif_round.py                           # runs/bench/rlaif_round.json
    python benchmarks/rlaif_round.py --prompts 16 --k 2 --train-steps 2   # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FRAMINGS = ["{p}", "Answer briefly. {p}", "Explain it to a beginner. {p}", "{p} Use a numbered list if it helps."]


def _prompts(n: int, out: Path) -> Path:
    base = [json.loads(x) for x in (ROOT / "examples" / "prompts.jsonl").read_text().splitlines() if x.strip()]
    rows = []
    for f_i, framing in enumerate(FRAMINGS):
        for b in base:
            rows.append({"id": f"{b['id']}-f{f_i}", "prompt": framing.format(p=b["prompt"])})
    rows = rows[:n]
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    from judge.backends import create_backend
    from judge.backends._models import resolve_model
    from judge.core._config import GenerateConfig, GenerationSamplingConfig, JobConfig, ModelConfig
    from judge.runner import run_job
    from rlaif import build_preferences, generate_candidates, train
    from rlaif._prefs_records import PrefsConfig
    from rlaif._train_config import TrainConfig

    work = Path(tempfile.mkdtemp(prefix="rlaif-round-"))
    model = resolve_model("bundled")
    prompts = _prompts(args.prompts, work / "prompts.jsonl")
    t = {}
    t0 = time.perf_counter()
    engine = create_backend("vllm", model=model, max_model_len=4096, enforce_eager=True, dtype="bfloat16")
    t["engine_start"] = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        gen = generate_candidates(GenerateConfig(
            data=prompts, output=work / "candidates.jsonl", policy=ModelConfig(backend="vllm", model=model), k=args.k,
            sampling=GenerationSamplingConfig(temperature=0.8, top_p=0.95, max_tokens=args.max_tokens, seed=0)),
            backend=engine, progress=False)
        t["generate"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        summ = run_job(JobConfig(data=work / "candidates.jsonl", output=work / "judgments.jsonl", rubrics=["helpfulness"],
                                 sampling={"max_tokens": 16}), backend=engine, progress=False)
        t["judge"] = time.perf_counter() - t0
    finally:
        engine.close()
    t0 = time.perf_counter()
    prefs = build_preferences(work / "judgments.jsonl", work / "candidates.jsonl", work / "prefs",
                              PrefsConfig(min_score_margin=0.0, max_length_ratio=None, test_fraction=0.0))
    t["prefs"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = train(TrainConfig(algorithm="dpo", model=model, ref_model=model, data=str(work / "prefs"),
                            output_dir=str(work / "policy"), max_steps=args.train_steps, batch_size=4,
                            max_length=512, learning_rate=5e-6), progress=False)
    t["train"] = time.perf_counter() - t0
    round_s = sum(t[s] for s in ("generate", "judge", "prefs", "train"))
    stages = {s: {"seconds": round(t[s], 3), "share": round(t[s] / round_s, 4)} for s in ("generate", "judge", "prefs", "train")}
    return {
        "prompts": args.prompts, "k": args.k, "candidates": gen.candidates,
        "judgments": summ.judgments, "pairs": prefs.pairs, "train_steps": res.steps,
        "engine_start_s": round(t["engine_start"], 3), "round_s": round(round_s, 3), "stages": stages,
        "judge_share": stages["judge"]["share"],
        "candidates_per_s": round(args.prompts * args.k / t["generate"], 3),
        "judgments_per_s": round(summ.judgments / t["judge"], 3),
        "train_s_per_step": round(t["train"] / max(1, res.steps), 3),
        "work_dir": str(work),
    }


def table(r: dict[str, Any]) -> str:
    lines = [f"one RLAIF round: {r['prompts']} prompts x {r['k']} candidates, bundled model as policy and judge",
             f"{'stage':<10} {'seconds':>9} {'share of round':>15}"]
    for s, v in r["stages"].items():
        lines.append(f"{s:<10} {v['seconds']:>9.1f} {v['share']:>14.1%}")
    lines.append(f"{'round':<10} {r['round_s']:>9.1f} {1:>14.0%}   (engine start {r['engine_start_s']:.1f}s, not counted)")
    lines.append(f"judge's share of the round: {r['judge_share']:.1%}   candidates/s {r['candidates_per_s']}   "
                 f"judgments/s {r['judgments_per_s']}   pairs {r['pairs']}   train s/step {r['train_s_per_step']}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=96, help="Tokens per candidate.")
    ap.add_argument("--train-steps", type=int, default=4)
    ap.add_argument("--keep", action="store_true", help="Keep the round's files (printed); default: removed.")
    ap.add_argument("--reward", action="store_true", help="Also run benchmarks/reward_throughput.py.")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench" / "rlaif_round.json")
    args = ap.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    load0 = os.getloadavg()
    result = run(args)
    result["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(), "load_start": load0,
                         "load_end": os.getloadavg()}
    print(table(result))
    if not args.keep:
        import shutil

        shutil.rmtree(result.pop("work_dir"), ignore_errors=True)
    if args.reward:
        import runpy

        sys.argv = [str(ROOT / "benchmarks" / "reward_throughput.py")]
        runpy.run_path(sys.argv[0], run_name="__main__")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
