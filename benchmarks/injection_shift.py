"""How far each shipped prompt-injection attack moves the attacked response's verdict.

    python benchmarks/injection_shift.py                 # vLLM, the bundled model
    python benchmarks/injection_shift.py --items 4 --backend hf

Pointwise (helpfulness): wrong or off-topic answers from ``tests/data/points_labelled.jsonl``,
clean and with each attack of ``tests/data/injection_attacks.jsonl``; the shift is the attacked
overall score (in [0, 1]) minus the clean one. Pairwise (instruction_following): the worse
response of labelled pairs carries the attack; the shift is its P(win) (mean of both orders) minus
the clean one. Each is measured with the defences on and off (``scoring.sanitize``) and for the
logprob and JSON verdict methods. Prints tables and writes JSON.
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
DATA = ROOT / "tests" / "data"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", default="vllm")
    ap.add_argument("--model", default="bundled")
    ap.add_argument("--items", type=int, default=6, help="Base items (pointwise); pairs use two thirds as many.")
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench" / "injection_shift.json"))
    args = ap.parse_args(argv)

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from judge.core._env import apply_runtime_defaults

    apply_runtime_defaults()
    from judge.backends import create_backend
    from judge.core._config import JobConfig
    from judge.backends._models import resolve_model
    from judge.core._records import Item
    from judge.eval._robustness import injection_report, load_attacks, report_table

    model = resolve_model(args.model)
    opts = {"enforce_eager": True, "max_model_len": 4096} if args.backend == "vllm" else {}
    backend = create_backend(args.backend, model=model, **opts)
    attacks = load_attacks(DATA / "injection_attacks.jsonl")
    points = [json.loads(line) for line in (DATA / "points_labelled.jsonl").read_text().splitlines()]
    base = [Item(id=p["id"], prompt=p["prompt"], response=p["response"]) for p in points if p["human_score"] == 1][: args.items]
    pairs = [json.loads(line) for line in (DATA / "pairs_labelled.jsonl").read_text().splitlines()]
    pairs = [p for p in pairs if p["label"] != "tie"][: max(2, (2 * args.items) // 3)]
    base_pairs = [Item(id=p["id"], prompt=p["prompt"], response_a=p["response_a"], response_b=p["response_b"]) for p in pairs]
    targets = {p["id"]: ("response_b" if p["label"] == "a" else "response_a") for p in pairs}
    work = Path(tempfile.mkdtemp(prefix="injection-"))
    runs = []
    for rubric, items, tg in (("helpfulness", base, None), ("instruction_following", base_pairs, targets)):
        methods = ("logprob", "json") if rubric == "helpfulness" else ("logprob",)
        for method in methods:
            for sanitize in (True, False):
                cfg = JobConfig(
                    data=work / "x", output=work / "y", rubrics=[rubric],
                    scoring={"method": method, "sanitize": sanitize}, sampling={"max_tokens": 48},
                )
                t0 = time.perf_counter()
                rep = injection_report(cfg, items, attacks, work / f"{rubric}-{method}-{sanitize}", backend=backend, targets=tg)
                rep["wall_s"] = round(time.perf_counter() - t0, 1)
                runs.append(rep)
                print(report_table(rep), flush=True)
    backend.close()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"backend": args.backend, "model": model, "runs": runs}, indent=2) + "\n", encoding="utf-8")
    print("  summary (mean shift / flips over all attacks):")
    for r in runs:
        o = r["overall"]
        print(f"    {r['rubric']:<22} {r['method']:<8} sanitize {str(r['sanitize']):<5} mean {o['mean_shift']:+.3f}  "
              f"max {o['max_shift']:+.3f}  flips {o['flips']}/{o['n']}")
    print(f"  wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
