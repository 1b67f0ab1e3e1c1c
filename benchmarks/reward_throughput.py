"""Reward throughput: the judge as a GRPO reward function vs transformers called directly for the same scores.

The same N (prompt, completion) pairs (distinct, realistic, deterministic: the items of
``judge_throughput.py``, grouped ``--generations`` completions per prompt as GRPO groups them) are
scored by one pointwise rubric (``helpfulness``, 1-5) through:

- ``direct``: what a user writes with transformers alone for the same scores: the judge's own
  messages (the rubric prompt, prefilled up to the score) through the chat template, one batched,
  left-padded ``AutoModelForCausalLM`` forward per ``--hf-batch-size`` prompts (output layer on the last
  position only), and the expected
  score from the softmax over the score tokens at the last position. No generation, no grammar,
  no request records: the least work these scores need. It is the baseline of every ratio.
- ``reward``: ``judge.reward_function`` on judgeloop's ``hf`` backend (same model, dtype and forward
  batch size), called as GRPOTrainer calls it: ``--batch`` completions per call, conversational
  prompts and completions, ``completion_ids``, ``trainer_state``, ``log_metric`` and ``log_extra``.
  Everything the call does is timed (request building, cache lookups, the constrained one-token
  generation with logprobs, judgments, metrics).
- ``reward-cached``: the same calls again on the same reward function: every judgment comes from
  its cache (a prompt's completions repeated across steps, or a second epoch).
- ``reward-vllm``: ``reward_function`` on the ``vllm`` backend (offline engine, prefix caching);
  engine start is reported apart. ``--skip reward-vllm`` leaves it out.

The scores of ``reward`` and ``direct`` are compared item by item (they read the same distribution:
the reward from the backend's top-20 logprobs, renormalised over the scale). ``direct`` gets the
judge's rendered messages for free (only its templating and forward are timed). Model loads,
engine start and a warm-up call of each system are not counted. The systems take turns batch by
batch, the first one changing every batch, so a change in the machine's load hits them alike; with
``--repeats R`` each repeat uses a new item set (the same for every system) and each system reports
its fastest repeat. The machines are shared: read the ratios, measured in the same run.

    python benchmarks/reward_throughput.py                 # 64 completions; runs/bench/reward_throughput.json
    python benchmarks/reward_throughput.py --repeats 2 --n 128
    python benchmarks/reward_throughput.py --skip reward-vllm --n 32 --out /tmp/r.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from judge_throughput import make_items, report_cpus  # noqa: E402  (the same items as the judging benchmark)

SYSTEMS = ("direct", "reward", "reward-cached", "reward-vllm")


def grpo_batches(items: list[Any], generations: int, batch: int) -> list[tuple[list[Any], list[Any]]]:
    """``(prompts, completions)`` per call, conversational: each prompt repeated ``generations`` times."""
    rows = []
    for g in range(0, len(items) - len(items) % generations, generations):
        prompt = [{"role": "user", "content": items[g].prompt}]
        rows.extend((prompt, [{"role": "assistant", "content": it.response}]) for it in items[g : g + generations])
    return [([p for p, _ in rows[k : k + batch]], [c for _, c in rows[k : k + batch]]) for k in range(0, len(rows), batch)]


def as_items(batches: list[tuple[list[Any], list[Any]]]) -> list[Any]:
    """The judged items of ``batches``, as the reward function builds them."""
    from judge.core._records import Item

    return [Item(prompt=p[0]["content"], response=c[0]["content"]) for ps, cs in batches for p, c in zip(ps, cs)]


# ----------------------------------------------------------------------------------------------
# Systems


class Tally:
    """One system's timed calls over a repeat: wall time, scores, cache hits."""

    def __init__(self) -> None:
        self.wall_s, self.scores, self.hits, self.requests = 0.0, [], 0, 0

    def result(self, cached: bool) -> dict[str, Any]:
        out = {"items_timed": len(self.scores), "wall_s": self.wall_s, "scores": self.scores,
               "scored": sum(x is not None for x in self.scores)}  # fmt: skip
        if cached:
            out["cache_hit_rate"] = self.hits / self.requests if self.requests else 0.0
        return out


def reward_step(reward: Any, prompts: list[Any], completions: list[Any], tally: Tally) -> None:
    """One batch through ``reward`` exactly as GRPOTrainer calls it; only the call is timed."""
    metrics: dict[str, list[float]] = {}
    extra: dict[str, list[Any]] = {}
    t0 = time.perf_counter()
    out = reward(
        prompts=prompts, completions=completions, completion_ids=[[0]] * len(completions), trainer_state=None,
        log_extra=lambda c, v: extra.setdefault(c, []).extend(v),
        log_metric=lambda k, v: metrics.setdefault(k, []).append(v),
    )  # fmt: skip
    tally.wall_s += time.perf_counter() - t0
    tally.scores.extend(out)
    tally.hits, tally.requests = tally.hits + reward.stats.cache_hits, tally.requests + reward.stats.requests


class Direct:
    """transformers alone: one batched forward of the judge's prefilled prompt, expected score from the logits."""

    def __init__(self, model_dir: str, dtype: str, batch_size: int) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch, self.batch_size = torch, batch_size
        self.tok = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).eval()
        self.pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id

    def _ids(self, messages: list[Any]) -> list[int]:
        msgs = [m.model_dump() for m in messages]
        text = self.tok.apply_chat_template(msgs, tokenize=False, continue_final_message=True)
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def score_tokens(self, messages: list[Any], values: list[str]) -> list[int]:
        """The token that starts each value right after the prefill (the plan's one constrained token)."""
        base = self._ids(messages)
        out = []
        for v in values:
            longer = self._ids(messages[:-1] + [messages[-1].model_copy(update={"content": messages[-1].content + v})])
            assert longer[: len(base)] == base and len(longer) == len(base) + 1, f"value {v!r} is not one token"
            out.append(longer[len(base)])
        return out

    def step(self, requests: list[Any], values: list[int], tokens: list[int], tally: Tally) -> None:
        """Expected scores of one batch of requests (templating included in the time)."""
        torch = self.torch
        t0 = time.perf_counter()
        ids = [self._ids(r.messages) for r in requests]
        scores: list[float] = []
        for k in range(0, len(ids), self.batch_size):
            chunk = ids[k : k + self.batch_size]
            width = max(len(x) for x in chunk)
            input_ids = torch.tensor([[self.pad] * (width - len(x)) + x for x in chunk])
            mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in chunk])
            positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding: positions count real tokens only
            with torch.inference_mode():
                # logits_to_keep=1: the output layer runs for the last position only, as in generate().
                logits = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                                    logits_to_keep=1).logits[:, -1]  # fmt: skip
            probs = torch.softmax(logits.float()[:, tokens], dim=-1)  # renormalised over the scale
            scores.extend((probs * torch.tensor(values, dtype=torch.float32)).sum(-1).tolist())
        tally.wall_s += time.perf_counter() - t0
        tally.scores.extend(scores)


# ----------------------------------------------------------------------------------------------
# Report


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    best = dict(min(runs, key=lambda r: r["wall_s"]))
    best["all_wall_s"] = [round(r["wall_s"], 3) for r in runs]
    best["items_per_s"] = best["items_timed"] / best["wall_s"]
    return best


def table(results: dict[str, dict[str, Any]]) -> str:
    base = results.get("direct", {}).get("items_per_s")
    head = f"{'system':<14} {'items':>6} {'wall s':>8} {'items/s':>9} {'vs direct':>10} {'scored':>8} {'cache hits':>11}"
    lines = [head, "-" * len(head)]
    for name, r in results.items():
        ratio = f"{r['items_per_s'] / base:.2f}x" if base else "-"
        hits = f"{100 * r['cache_hit_rate']:.0f}%" if "cache_hit_rate" in r else "-"
        lines.append(f"{name:<14} {r['items_timed']:>6} {r['wall_s']:>8.2f} {r['items_per_s']:>9.2f} {ratio:>10} "
                     f"{r['scored']:>4}/{r['items_timed']:<3} {hits:>11}")  # fmt: skip
    return "\n".join(lines)


def report(runs: dict[str, list[dict[str, Any]]], setup: dict[str, float], load_start: tuple[float, ...],
           args: argparse.Namespace, final: bool) -> None:  # fmt: skip
    """Rates, ratios and score agreement of the repeats done so far: written to the JSON, printed when final."""
    from judge.core._io import atomic_write

    done = min((len(rs) for rs in runs.values()), default=0)
    results = {name: _best(rs[:done]) for name, rs in runs.items() if done}
    base = results.get("direct")
    ratios = {f"{n}/direct": r["items_per_s"] / base["items_per_s"] for n, r in results.items() if base and n != "direct"}
    per_repeat = {f"{n}/direct": [round(runs["direct"][k]["wall_s"] / runs[n][k]["wall_s"], 3) for k in range(done)]
                  for n in runs if n != "direct" and "direct" in runs}  # fmt: skip
    agreement: dict[str, Any] = {}
    if done and "direct" in runs and "reward" in runs:  # repeat 1: the same items on both
        diffs = [abs(a - b) for a, b in zip(runs["reward"][0]["scores"], runs["direct"][0]["scores"]) if a is not None]
        agreement = {"n": len(diffs), "max_abs_diff": max(diffs, default=None),
                     "mean_abs_diff": statistics.fmean(diffs) if diffs else None,
                     "within_0.05": sum(d <= 0.05 for d in diffs) / len(diffs) if diffs else None}  # fmt: skip
    if final:
        load_now = os.getloadavg()
        print()
        print(table(results))
        print()
        print(f"machine load average (1 min): {load_start[0]:.1f} at start, {load_now[0]:.1f} at end on {report_cpus()} CPUs")
        print("setup (not counted): " + ", ".join(f"{k} {v:.1f}s" for k, v in setup.items()))
        print("ratios (items/s against direct, fastest repeats): " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
        if done > 1:
            print("ratios per repeat: " + "; ".join(f"{k} " + ", ".join(f"{x:.2f}x" for x in v) for k, v in per_repeat.items()))
        if agreement:
            print(f"reward vs direct scores: max |diff| {agreement['max_abs_diff']:.4f}, mean {agreement['mean_abs_diff']:.4f}, "
                  f"{100 * agreement['within_0.05']:.0f}% within 0.05 ({agreement['n']} items, {args.dtype})")  # fmt: skip
    out = {
        "benchmark": "reward_throughput",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "complete": final,
        "repeats_done": done,
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": report_cpus()},
        "load_average_1m": {"start": round(load_start[0], 2), "end": round(os.getloadavg()[0], 2)},
        "setup_s": {k: round(v, 2) for k, v in setup.items()},
        "results": {n: {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items() if k != "scores"}
                    for n, r in results.items()},  # fmt: skip
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "ratios_per_repeat": per_repeat,
        "score_agreement": agreement,
    }
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(out, indent=2) + "\n")
    if final:
        print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=64, help="Completions per system and repeat (default 64).")
    p.add_argument("--generations", type=int, default=4, help="Completions per prompt, as GRPO's num_generations (4).")
    p.add_argument("--batch", type=int, default=16, help="Completions per reward call, GRPO's generation batch (16).")
    p.add_argument("--item-tokens", type=int, default=200, help="Tokens of prompt + completion per item (default 200).")
    p.add_argument("--rubric", default="helpfulness", help="Pointwise rubric id with one criterion (helpfulness).")
    p.add_argument("--model", default="bundled", help="Judge model directory or 'bundled'.")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"], help="Compute dtype, all systems.")
    p.add_argument("--hf-batch-size", type=int, default=16, help="Prompts per forward, direct and hf backend (16).")
    p.add_argument("--repeats", type=int, default=1, help="Time every system this many times; report the fastest.")
    p.add_argument("--skip", action="append", default=[], choices=["reward-cached", "reward-vllm"],
                   help="Leave a system out (direct and reward always run: they are the comparison).")
    p.add_argument("--out", default=str(ROOT / "runs" / "bench" / "reward_throughput.json"), help="JSON output.")
    args = p.parse_args(argv)
    if args.n < args.generations or args.batch % args.generations:
        p.error(f"--batch ({args.batch}) must be a multiple of --generations ({args.generations}), and --n at least it")

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from judge.core._env import apply_runtime_defaults

    apply_runtime_defaults()
    from transformers import AutoTokenizer

    from judge import Judge, reward_function
    from judge.backends import create_backend
    from judge.backends._models import resolve_model
    from judge.inputs._rubric import resolve_rubric

    rubric = resolve_rubric(args.rubric)
    if rubric.mode != "pointwise" or len(rubric.criteria) != 1:
        p.error(f"--rubric must be a pointwise rubric with one criterion, got {args.rubric!r}")
    model_dir = resolve_model(args.model)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    sets = [grpo_batches(make_items(args.n, tokenizer, args.item_tokens, seed=k), args.generations, args.batch)
            for k in range(args.repeats)]  # fmt: skip
    warmup = grpo_batches(make_items(args.generations, tokenizer, args.item_tokens, seed=1000), args.generations, args.batch)

    setup: dict[str, float] = {}
    runs: dict[str, list[dict[str, Any]]] = {}
    load_start = os.getloadavg()
    backends: dict[str, Any] = {}
    try:
        print("direct: loading ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        direct = Direct(model_dir, args.dtype, args.hf_batch_size)
        setup["direct_load_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        backends["hf"] = create_backend("hf", model=model_dir, dtype=args.dtype, batch_size=args.hf_batch_size)
        setup["hf_load_s"] = time.perf_counter() - t0
        if "reward-vllm" not in args.skip:
            print("vllm backend: starting the engine ...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            backends["vllm"] = create_backend("vllm", model=model_dir, dtype=args.dtype, max_model_len=2048,
                                              enforce_eager=True)  # fmt: skip
            setup["vllm_engine_start_s"] = time.perf_counter() - t0
        judges = {name: Judge(args.rubric, be, model=model_dir) for name, be in backends.items()}
        plan = judges["hf"].plan(rubric)
        if plan.method != "logprob" or plan.choices is None:
            p.error(f"rubric {args.rubric!r} is not scored from logprobs by this judge ({plan.reason})")
        first = judges["hf"].requests(as_items(warmup)[0])[0].messages
        tokens = direct.score_tokens(first, list(plan.choices))
        values = [int(c) for c in plan.choices]
        names = [s for s in SYSTEMS if s not in args.skip]
        runs = {name: [] for name in names}
        hf = judges["hf"]
        direct.step([hf.requests(it)[0] for it in as_items(warmup)], values, tokens, Tally())
        for j in judges.values():  # grammar compilation and first calls, not timed
            for ps, cs in warmup:
                reward_step(reward_function(j, cache=False), ps, cs, Tally())
        for k in range(args.repeats):
            rewards = {name: reward_function(j) for name, j in judges.items()}  # fresh caches per repeat
            tallies = {name: Tally() for name in names}
            live = [n for n in names if n != "reward-cached"]
            # The systems take turns batch by batch (the first one changes every batch), so that a change
            # in the shared machine's load hits them alike.
            for b, (ps, cs) in enumerate(sets[k]):
                print(f"repeat {k + 1}/{args.repeats}: batch {b + 1}/{len(sets[k])} ...", file=sys.stderr, flush=True)
                for name in live[b % len(live) :] + live[: b % len(live)]:
                    if name == "direct":
                        direct.step([hf.requests(it)[0] for it in as_items([(ps, cs)])], values, tokens, tallies[name])
                    else:
                        reward_step(rewards["vllm" if name == "reward-vllm" else "hf"], ps, cs, tallies[name])
                if "reward-cached" in tallies:  # the same call again, after 'reward' made it: all cached
                    reward_step(rewards["hf"], ps, cs, tallies["reward-cached"])
            for name in names:
                runs[name].append(tallies[name].result(name != "direct"))
            report(runs, setup, load_start, args, final=False)
    finally:
        for be in backends.values():
            be.close()
    report(runs, setup, load_start, args, final=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
