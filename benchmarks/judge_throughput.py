"""Judging throughput: the vLLM backend vs the batched transformers backend vs a naive loop.

The same N pointwise judgments (one rubric; distinct, realistic items of about 300 tokens each,
generated deterministically here) go through:

- ``naive``: a per-item loop as a user would write it with transformers: the judge prompt (the
  rubric's messages asking for the JSON verdict) through the chat template,
  ``AutoModelForCausalLM.generate`` one item at a time, greedy, with the job's ``max_tokens``; no
  batching, no constrained decoding, no prefill. It may time a subset (``--naive-n``),
  extrapolated per item; the table says so.
- ``hf``: judgeloop's ``hf`` backend (batched, left padding, constrained), through ``run_job``.
- ``vllm``: judgeloop's ``vllm`` backend (offline engine, prefix caching, constrained), through
  ``run_job``. Engine start is reported separately and not counted.

Verdicts are asked for as the product does by default (``scoring.method: auto``: for a rubric
with single-token levels, a prefilled answer continued with one constrained token read from its
logprobs); ``--method json`` has the judge write the JSON verdict instead (about 11 tokens).

Every system runs in this process with the same dtype and threads; model loads and engine start
are not counted. With ``--repeats R`` the systems alternate, repeat after repeat, each repeat on a
new set of items (the same sets for every system, so no engine sees a prompt twice and only the
rubric's shared prefix is ever cached), and each system reports its fastest repeat. The machine
may be shared: read the ratios, measured in the same run, rather than the absolute numbers.

    python benchmarks/judge_throughput.py                  # 256 judgments; runs/bench/judge_throughput.json
    python benchmarks/judge_throughput.py --repeats 2 --method json
    python benchmarks/judge_throughput.py --n 64 --naive-n 16 --out /tmp/t.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# ----------------------------------------------------------------------------------------------
# Items: distinct, realistic, deterministic

_TOPICS = [
    ("sourdough bread", "baking"), ("a home network", "networking"), ("compound interest", "personal finance"),
    ("tomato plants", "gardening"), ("a job interview", "careers"), ("a 10 km race", "running"),
    ("unit tests in Python", "software"), ("jet lag", "travel"), ("a leaking tap", "home repair"),
    ("the French subjunctive", "languages"), ("a first aquarium", "pets"), ("solar panels", "energy"),
    ("a wedding toast", "public speaking"), ("backing up photos", "computing"), ("a used car", "buying"),
    ("houseplants in winter", "gardening"), ("a budget spreadsheet", "personal finance"),
    ("learning the guitar", "music"), ("a slow laptop", "computing"), ("a camping trip", "outdoors"),
    ("a cover letter", "careers"), ("cast-iron pans", "cooking"), ("a sprained ankle", "first aid"),
    ("SQL joins", "software"), ("a noisy neighbour", "everyday life"), ("a reading habit", "self-improvement"),
    ("composting", "gardening"), ("an electric bike", "transport"), ("a toddler's sleep", "parenting"),
    ("a small business website", "marketing"), ("the night sky", "astronomy"), ("a rental contract", "housing"),
]  # fmt: skip
_ASKS = [
    "How do I get started with {t}? I have never done it before and want to avoid the usual mistakes.",
    "What should I know about {t} before I spend money on it? Please be practical.",
    "Can you explain {t} to me step by step? I keep reading contradictory advice online.",
    "I am struggling with {t}. What am I probably doing wrong, and how do I fix it?",
    "Give me a short plan for {t} that fits into a busy week.",
    "What are the most common misconceptions about {t}, and what is actually true?",
]
_OPENERS = [
    "Good question: {t} is easier than it looks once you know the basics.",
    "Here is a practical overview of {t}, based on what usually works for beginners.",
    "Most problems with {t} come from a few predictable causes.",
    "Before anything else, it helps to be clear about what you want from {t}.",
]
_SENTENCES = [
    "Start with the simplest setup you can find and change one thing at a time, so you know what made the difference.",
    "Write down what you did and what happened; after {k} attempts the pattern is usually obvious.",
    "A common mistake is to buy expensive equipment first, when the technique matters far more in the first {k} weeks.",
    "Set aside about {k} minutes for it, ideally at the same time of day, so that it becomes a habit rather than a chore.",
    "If something goes wrong, check the basics first: most failures in {d} have a boring cause.",
    "Experienced people in {d} still follow a checklist, because it stops small slips from becoming expensive ones.",
    "Expect the first results to be mediocre; the improvement between attempt one and attempt {k} is usually dramatic.",
    "Ask someone who has done it for a few years to look at your approach, since a second pair of eyes saves time.",
    "Keep the costs visible: a simple note of what you spend each month prevents surprises later on.",
    "There is no single right way, but there are a few wrong ones, and avoiding those gets you most of the benefit.",
    "Safety comes first: read the instructions that came with your tools, and stop if anything feels wrong.",
    "Be wary of advice that promises results in {k} days; real progress in {d} is steady rather than sudden.",
    "Measure what matters to you, not what is easy to count, or you will optimise the wrong thing.",
    "When you get stuck, simplify the problem until it works, then add the complications back one by one.",
    "Online forums about {d} are useful, but check whether the person giving advice has the same situation as you.",
    "Plan for maintenance from the start, because neglect causes more trouble than any single bad decision.",
    "It is fine to skip the advanced options at first; most people never need more than the defaults.",
    "Compare at least {k} options before committing, and write down why you chose the one you did.",
    "If you only remember one thing, remember to be consistent: small regular efforts beat occasional big ones.",
    "Finally, give yourself permission to make mistakes, since that is how everyone in {d} learned.",
]  # fmt: skip
_CLOSERS = [
    "I hope this helps; tell me more about your situation and I can be more specific.",
    "Good luck, and feel free to ask a follow-up question.",
    "That should be enough to get going without overthinking it.",
    "",
]


def make_items(n: int, tokenizer: Any, item_tokens: int = 300, seed: int = 0) -> list[Any]:
    """``n`` distinct pointwise items whose prompt + response is about ``item_tokens`` tokens."""
    from judge.core._records import Item

    rng = random.Random(seed)
    items = []
    for i in range(n):
        topic, domain = _TOPICS[i % len(_TOPICS)]
        ask = _ASKS[(i // len(_TOPICS)) % len(_ASKS)].format(t=topic)
        prompt = f"{ask} (Question {i + 1} from a {domain} forum, seed {seed}.)"
        parts = [rng.choice(_OPENERS).format(t=topic)]
        pool = list(_SENTENCES)
        rng.shuffle(pool)
        while len(tokenizer(prompt + " " + " ".join(parts))["input_ids"]) < item_tokens - 8:
            if not pool:
                pool = list(_SENTENCES)
                rng.shuffle(pool)
            parts.append(pool.pop().format(k=rng.randint(2, 30), d=domain))
        closer = rng.choice(_CLOSERS)
        response = " ".join(parts + ([closer] if closer else []))
        items.append(Item(id=f"bench-{seed}-{i:04d}", prompt=prompt, response=response))
    return items


# ----------------------------------------------------------------------------------------------
# Systems


def _job(items: list[Any], workdir: Path, args: argparse.Namespace, model_dir: str, method: str | None = None) -> Any:
    from judge.core._config import JobConfig

    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "items.jsonl"
    data.write_text("".join(i.model_dump_json() + "\n" for i in items))
    return JobConfig.model_validate(
        {
            "data": str(data),
            "output": str(workdir / "judgments.jsonl"),
            "rubrics": [args.rubric],
            "judge": {"model": model_dir},
            "sampling": {"max_tokens": args.max_tokens, "temperature": 0.0},
            "scoring": {"method": method or args.method},
            "batch_size": args.batch_size,
        }
    )


def run_product(
    name: str, backend: Any, items: list[Any], warmup: list[Any], args: argparse.Namespace, tmp: Path, rep: int,
    model_dir: str,
) -> dict[str, Any]:
    """Judge ``items`` with ``run_job`` on a ready backend; time the job only."""
    from judge.runner._engine import run_job
    from judge.core._records import Judgment

    run_job(_job(warmup, tmp / f"{name}-warmup-{rep}", args, model_dir), backend=backend, progress=False)
    cfg = _job(items, tmp / f"{name}-{rep}", args, model_dir)
    counter = CachedTokens(backend.llm) if name == "vllm" else None
    if counter is not None:
        counter.__enter__()
    try:
        t0 = time.perf_counter()
        summary = run_job(cfg, backend=backend, progress=False)
        wall = time.perf_counter() - t0
    finally:
        if counter is not None:
            counter.__exit__()
    judgments = [Judgment.model_validate_json(line) for line in Path(cfg.output).read_text().splitlines()]
    assert summary.new_judgments == len(items), (summary.new_judgments, len(items))
    return {
        "items_timed": len(items),
        "wall_s": wall,
        "prompt_tokens": summary.prompt_tokens,
        "completion_tokens": summary.completion_tokens,
        "scored": sum(j.status == "scored" for j in judgments),
        "method": judgments[0].extra.get("method"),
        "scores": {j.item_id: j.scores for j in judgments},
        **({"cached_prompt_tokens": counter.cached, "engine_s": counter.engine_s, "prompt_ids": counter.prompt_ids}
           if counter is not None else {}),
    }  # fmt: skip


class CachedTokens:
    """Counts the prompt tokens vLLM served from its prefix cache (``RequestOutput.num_cached_tokens``).

    Wraps the engine's ``generate`` for the duration of a timed run; the product's backend is not
    changed. Also keeps the time spent inside the engine's ``generate`` (the rest of a job's wall
    time is the runner's: request building, reading verdicts, writing records) and the prompts'
    token ids, for :func:`run_bare_prompts`.
    """

    def __init__(self, llm: Any) -> None:
        self.llm, self.prompt = llm, 0
        self.cached = 0
        self.engine_s = 0.0
        self.prompt_ids: list[list[int]] = []
        self._orig = llm.generate

    def __enter__(self) -> "CachedTokens":
        def generate(*a: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            outs = self._orig(*a, **kw)
            self.engine_s += time.perf_counter() - t0
            for o in outs:
                self.prompt += len(o.prompt_token_ids or [])
                self.cached += int(o.num_cached_tokens or 0)
                self.prompt_ids.append(list(o.prompt_token_ids or []))
            return outs

        self.llm.generate = generate
        return self

    def __exit__(self, *exc: Any) -> None:
        self.llm.generate = self._orig


def item_token_ids(items: list[Any], tokenizer: Any) -> list[list[int]]:
    """Each item's own texts (prompt and response, no rubric, no instructions, no template)."""
    return [tokenizer(f"{i.prompt}\n\n{i.response}", add_special_tokens=False)["input_ids"] for i in items]


def _bare_generate(backend: Any, prompt_ids: list[list[int]], args: argparse.Namespace, method: str) -> dict[str, Any]:
    """Token-id prompts through a bare ``generate(max_tokens=1)`` in calls of ``--batch-size``, timed.

    Greedy, no logprobs, no constraint; the prompt and cached tokens are counted as for the judge.
    """
    from vllm import SamplingParams as VSamplingParams
    from vllm.inputs import TokensPrompt

    params = VSamplingParams(temperature=0.0, max_tokens=1)
    with CachedTokens(backend.llm) as counter:
        t0 = time.perf_counter()
        for k in range(0, len(prompt_ids), args.batch_size):
            backend.llm.generate([TokensPrompt(prompt_token_ids=x) for x in prompt_ids[k : k + args.batch_size]],
                                 params, use_tqdm=False)  # fmt: skip
        wall = time.perf_counter() - t0
    n = len(prompt_ids)
    return {"items_timed": n, "wall_s": wall, "prompt_tokens": counter.prompt, "completion_tokens": n,
            "cached_prompt_tokens": counter.cached, "scored": n, "method": method}  # fmt: skip


def _warm(backend: Any, ids: list[int]) -> None:
    from vllm import SamplingParams as VSamplingParams
    from vllm.inputs import TokensPrompt

    backend.llm.generate([TokensPrompt(prompt_token_ids=ids)], VSamplingParams(temperature=0.0, max_tokens=1),
                         use_tqdm=False)  # fmt: skip


def run_floor(backend: Any, items: list[Any], tokenizer: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The prefill floor: the items' own texts through a bare ``generate(max_tokens=1)`` on the same engine.

    In calls of ``--batch-size`` prompts, like the judge, greedy, no logprobs, no constraint: the
    least work any judge of these items has to do.
    """
    ids = item_token_ids(items, tokenizer)
    _warm(backend, ids[0][:64])
    return _bare_generate(backend, ids, args, "bare generate(max_tokens=1)")


def run_bare_prompts(backend: Any, prompt_ids: list[list[int]], args: argparse.Namespace) -> dict[str, Any]:
    """The judge's own prompts (token ids as the engine saw them) through a bare ``generate(max_tokens=1)``.

    Between the floor (the items' texts alone) and the judge: the same tokens and prefix-cache hits
    as the judge, without its logprobs, constrained choice and runner. The prefix cache is emptied
    and then holds only the prompts' common prefix (the rubric's system turn), as it did for the
    judge after its warm-up.
    """
    common = os.path.commonprefix(prompt_ids)  # element-wise: the token ids every prompt starts with
    backend.llm.reset_prefix_cache()
    _warm(backend, common)
    out = _bare_generate(backend, prompt_ids, args, "the judge's prompts, bare generate(max_tokens=1)")
    return {**out, "shared_prefix_tokens": len(common)}


class NaiveLoop:
    """The loop a user writes first: one ``generate`` per item, greedy.

    It sends the product's judge messages for the JSON verdict (the same prompt text as the
    backends, without the prefill of the logprob method) with the job's ``max_tokens``, with no
    batching, no constrained decoding and no logprobs; its text is scored by the product's parser.
    """

    def __init__(self, model_dir: str, args: argparse.Namespace) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from judge.inputs._rubric import resolve_rubric

        self.torch, self.args = torch, args
        self.rubric = resolve_rubric(args.rubric)
        self.tok = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, args.dtype)).eval()

    def judge_one(self, request: Any) -> Any:
        from judge.backends import Completion

        msgs = [m.model_dump() for m in request.messages]
        prefill = msgs[-1]["role"] == "assistant"
        inputs = self.tok.apply_chat_template(msgs, add_generation_prompt=not prefill, continue_final_message=prefill,
                                              return_tensors="pt", return_dict=True)  # fmt: skip
        with self.torch.no_grad():
            out = self.model.generate(**inputs, max_new_tokens=request.sampling.max_tokens, do_sample=False,
                                      pad_token_id=self.tok.eos_token_id)  # fmt: skip
        n_prompt = inputs["input_ids"].shape[1]
        new = out[0, n_prompt:]
        return Completion(text=self.tok.decode(new, skip_special_tokens=True), prompt_tokens=n_prompt,
                          completion_tokens=int(new.shape[0]))  # fmt: skip

    def run(self, requests: list[Any], warmup: list[Any]) -> dict[str, Any]:
        from judge.core._records import JudgeInfo
        from judge.scoring import judgment_from

        self.judge_one(warmup[0])
        t0 = time.perf_counter()
        completions = [self.judge_one(r) for r in requests]
        wall = time.perf_counter() - t0
        info = JudgeInfo(model="naive", model_hash="-", backend="naive")
        judgments = [judgment_from(r, self.rubric, c, info, 0.0) for r, c in zip(requests, completions)]
        return {
            "items_timed": len(requests),
            "wall_s": wall,
            "prompt_tokens": sum(c.prompt_tokens for c in completions),
            "completion_tokens": sum(c.completion_tokens for c in completions),
            "scored": sum(j.status == "scored" for j in judgments),
            "method": f"text (<= {self.args.max_tokens} tokens)",
        }

    def close(self) -> None:
        self.model = None


# ----------------------------------------------------------------------------------------------
# Report


def _rates(r: dict[str, Any]) -> dict[str, Any]:
    r["judgments_per_s"] = r["items_timed"] / r["wall_s"]
    r["prompt_tokens_per_s"] = r["prompt_tokens"] / r["wall_s"]
    r["mean_prompt_tokens"] = r["prompt_tokens"] / r["items_timed"]
    r["mean_completion_tokens"] = r["completion_tokens"] / r["items_timed"]
    if "cached_prompt_tokens" in r:
        r["mean_uncached_prompt_tokens"] = (r["prompt_tokens"] - r["cached_prompt_tokens"]) / r["items_timed"]
        r["uncached_prompt_tokens_per_s"] = (r["prompt_tokens"] - r["cached_prompt_tokens"]) / r["wall_s"]
    return r


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    best = dict(min(runs, key=lambda r: r["wall_s"]))
    best["all_wall_s"] = [round(r["wall_s"], 3) for r in runs]
    return best


def report_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def table(results: dict[str, dict[str, Any]], n: int) -> str:
    head = f"{'system':<13} {'items':>12} {'judge s':>9} {'judgments/s':>12} {'prompt tok/s':>13} " \
           f"{'tok/item':>9} {'uncached':>9} {'gen/item':>9} {'scored':>8}  verdict"  # fmt: skip
    lines = [head, "-" * len(head)]
    for name, r in results.items():
        items = f"{r['items_timed']}" + (f" (of {n})*" if r["items_timed"] < n else "")
        lines.append(
            f"{name:<13} {items:>12} {r['wall_s'] * n / r['items_timed']:>9.1f} {r['judgments_per_s']:>12.2f} "
            f"{r['prompt_tokens_per_s']:>13.0f} {r['mean_prompt_tokens']:>9.0f} "
            f"{(format(r['mean_uncached_prompt_tokens'], '.0f') if 'mean_uncached_prompt_tokens' in r else '-'):>9} "
            f"{r['mean_completion_tokens']:>9.1f} "
            f"{r['scored']:>4}/{r['items_timed']:<3}  {r.get('method')}"
        )
    if any(r["items_timed"] < n for r in results.values()):
        lines.append(f"* timed on a subset; 'judge s' is extrapolated per item to {n} items")
    return "\n".join(lines)


def report(
    runs: dict[str, list[dict[str, Any]]],
    setup: dict[str, float],
    load_start: tuple[float, ...],
    args: argparse.Namespace,
    final: bool,
) -> None:
    """Rates and ratios from the repeats done so far: written to the JSON, printed when final.

    Called after every repeat, so that a run stopped early still leaves its measurements.
    """
    import torch

    load_now = os.getloadavg()
    done = min((len(rs) for rs in runs.values()), default=0)
    results = {name: _rates(_best(rs[:done])) for name, rs in runs.items() if done}
    ratios: dict[str, float] = {}
    pairs = (("vllm", "hf"), ("vllm", "naive"), ("hf", "naive"), ("vllm", "vllm-separate"),
             ("vllm-compiled", "vllm"), ("vllm-compiled", "hf"))  # fmt: skip
    for a, b in pairs:
        if a in results and b in results:
            ratios[f"{a}/{b}"] = results[a]["judgments_per_s"] / results[b]["judgments_per_s"]
    per_repeat: dict[str, list[float]] = {}
    for a, b in pairs:
        if a in runs and b in runs:
            per_repeat[f"{a}/{b}"] = [
                round((ra["items_timed"] / ra["wall_s"]) / (rb["items_timed"] / rb["wall_s"]), 3)
                for ra, rb in zip(runs[a][:done], runs[b][:done])
            ]
    # The prefill floor is a time ratio (judge wall / floor wall on the same items): lower is better.
    floor: dict[str, Any] = {}
    if "vllm" in results and "floor" in results:
        floor = {
            "judge_over_floor": results["vllm"]["wall_s"] / results["floor"]["wall_s"],
            "judge_over_floor_per_repeat": [round(ra["wall_s"] / rb["wall_s"], 3)
                                            for ra, rb in zip(runs["vllm"][:done], runs["floor"][:done])],  # fmt: skip
            "item_tokens_per_judgment": results["floor"]["mean_prompt_tokens"],
            "judge_prompt_tokens_per_judgment": results["vllm"]["mean_prompt_tokens"],
            "judge_uncached_prompt_tokens_per_judgment": results["vllm"].get("mean_uncached_prompt_tokens"),
            "target": 1.5,
        }
        floor["met"] = floor["judge_over_floor"] <= floor["target"]
    if floor and "prompts" in runs and runs["prompts"][:done]:
        # Where the judge's time goes, from its fastest repeat and the same repeat's floors: the
        # judge's tokens alone (bare generate of its prompts), then the engine calls the job made
        # (the same tokens with logprobs and the constrained choice), then the whole job (+ runner).
        k = min(range(done), key=lambda i: runs["vllm"][i]["wall_s"])
        v, f, b = runs["vllm"][k], runs["floor"][k], runs["prompts"][k]
        floor["time_split_s"] = {"floor": f["wall_s"], "bare_judge_prompts": b["wall_s"],
                                 "judge_engine_calls": v["engine_s"], "judge_runner": v["wall_s"] - v["engine_s"],
                                 "judge_job": v["wall_s"]}  # fmt: skip
        floor["over_floor"] = {"bare_judge_prompts": b["wall_s"] / f["wall_s"],
                               "judge_engine_calls": v["engine_s"] / f["wall_s"], "judge_job": v["wall_s"] / f["wall_s"]}  # fmt: skip
        floor["bare_judge_uncached_prompt_tokens_per_judgment"] = (b["prompt_tokens"] - b["cached_prompt_tokens"]) / b["items_timed"]
        floor["shared_prefix_tokens"] = b["shared_prefix_tokens"]
    # Each other product system against vllm on the same items (repeat 1), greedy on both.
    same_scores: dict[str, float] = {}
    for other in ("hf", "vllm-separate", "vllm-compiled"):
        if done and other in runs and "vllm" in runs:
            sa, sb = runs[other][0]["scores"], runs["vllm"][0]["scores"]
            same_scores[other] = sum(sa[k] == sb.get(k) for k in sa) / len(sa)
    agreement = same_scores.get("hf")
    targets = {"vllm/hf": 3.0, "vllm/naive": 10.0}
    met = {k: ratios[k] >= t for k, t in targets.items() if k in ratios}

    if final:
        print()
        print(table(results, args.n))
        print()
        print(f"machine load average (1 min): {load_start[0]:.1f} at start, {load_now[0]:.1f} at end "
              f"on {report_cpus()} CPUs")  # fmt: skip
        print("setup (not counted): " + ", ".join(f"{k} {v:.1f}s" for k, v in setup.items()))
        print("ratios (judgments/s, fastest repeats): " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
        if done > 1:
            print("ratios per repeat: "
                  + "; ".join(f"{k} " + ", ".join(f"{x:.2f}x" for x in v) for k, v in per_repeat.items()))  # fmt: skip
        if met:
            print("targets: " + ", ".join(f"{k} >= {targets[k]:.0f}x {'met' if ok else 'NOT met'}" for k, ok in met.items()))
        if floor:
            print(f"prefill floor: the judge takes {floor['judge_over_floor']:.2f}x the floor's time (per repeat "
                  + ", ".join(f"{x:.2f}x" for x in floor["judge_over_floor_per_repeat"])
                  + f"; target <= {floor['target']}x {'met' if floor['met'] else 'NOT met'}); per judgment "
                  f"{floor['judge_prompt_tokens_per_judgment']:.0f} prompt tokens, "
                  f"{floor['judge_uncached_prompt_tokens_per_judgment']:.0f} not from the prefix cache, "
                  f"against the item's own {floor['item_tokens_per_judgment']:.0f}")  # fmt: skip
        if "time_split_s" in floor:
            t, o = floor["time_split_s"], floor["over_floor"]
            print(f"where the time goes (fastest vllm repeat): floor {t['floor']:.1f}s; the judge's prompts through a "
                  f"bare generate {t['bare_judge_prompts']:.1f}s ({o['bare_judge_prompts']:.2f}x: the tokens); the job's "
                  f"engine calls {t['judge_engine_calls']:.1f}s ({o['judge_engine_calls']:.2f}x: + logprobs, "
                  f"constrained choice); the whole job {t['judge_job']:.1f}s ({o['judge_job']:.2f}x: + runner "
                  f"{t['judge_runner']:.1f}s); shared prefix {floor['shared_prefix_tokens']} tokens")  # fmt: skip
        for other, share in same_scores.items():
            print(f"{other} and vllm gave the same scores on {share:.0%} of items (greedy, {args.dtype})")

    out = {
        "benchmark": "judge_throughput",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "complete": final,
        "repeats_done": done,
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": report_cpus(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "VLLM_CPU_OMP_THREADS_BIND": os.environ.get("VLLM_CPU_OMP_THREADS_BIND"),
            "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE"),
            "LD_PRELOAD": os.environ.get("LD_PRELOAD"),
        },
        "load_average_1m": {"start": round(load_start[0], 2), "end": round(load_now[0], 2)},
        "setup_s": {k: round(v, 2) for k, v in setup.items()},
        "results": {
            name: {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items() if k not in ("scores", "prompt_ids")}
            for name, r in results.items()
        },
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "ratios_per_repeat": per_repeat,
        "targets": {k: {"target": targets[k], "met": ok} for k, ok in met.items()},
        "prefill_floor": {k: ({kk: round(vv, 3) for kk, vv in v.items()} if isinstance(v, dict)
                              else round(v, 3) if isinstance(v, float) else v) for k, v in floor.items()},  # fmt: skip
        "hf_vllm_score_agreement": agreement,
        "same_scores_as_vllm": same_scores,
    }
    from judge.core._io import atomic_write

    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(out, indent=2) + "\n")
    if final:
        print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=256, help="Judgments per system (default 256).")
    p.add_argument("--naive-n", type=int, default=64, help="Items the naive loop times (default 64; extrapolated).")
    p.add_argument("--max-tokens", type=int, default=32, help="Most generated tokens per JSON verdict (default 32).")
    p.add_argument("--method", default="auto", choices=["auto", "logprob", "json"],
                   help="scoring.method: how verdicts are asked for (default auto, the product default).")  # fmt: skip
    p.add_argument("--item-tokens", type=int, default=300, help="Tokens of prompt + response per item (default 300).")
    p.add_argument("--rubric", default="helpfulness", help="Pointwise rubric id (default helpfulness).")
    p.add_argument("--model", default="bundled", help="Judge model directory or 'bundled'.")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"], help="Compute dtype, all systems.")
    p.add_argument("--batch-size", type=int, default=64, help="run_job batch size (requests per backend call).")
    p.add_argument("--hf-batch-size", type=int, default=16, help="hf backend forward batch size.")
    p.add_argument("--max-num-seqs", type=int, default=256, help="vLLM: most sequences per engine step.")
    p.add_argument("--max-num-batched-tokens", type=int, default=None,
                   help="vLLM: most tokens per engine step (default: the backend's default).")  # fmt: skip
    p.add_argument("--block-size", type=int, default=None,
                   help="vLLM: KV-cache block size, the unit of prefix caching (default: the backend's, 32 on CPU).")  # fmt: skip
    p.add_argument("--no-floor", action="store_true", help="Skip the prefill floor (bare generate of the items' texts).")
    p.add_argument("--kv-cache-gib", type=int, default=1, help="vLLM-CPU KV cache (GiB) when not set in the env.")
    p.add_argument("--no-prefix-caching", action="store_true", help="vLLM: disable prefix caching.")
    p.add_argument("--compile", action="store_true", help="vLLM: torch.compile (slower start) instead of eager.")
    p.add_argument("--repeats", type=int, default=1, help="Time every system this many times; report the fastest.")
    p.add_argument("--separate-engine", action="store_true",
                   help="Also time a vllm engine in vLLM's own EngineCore and worker processes (in_process: "
                        "false, the GPU default) beside the backend's default engine.")
    p.add_argument("--compiled-engine", action="store_true",
                   help="Also time a vllm engine built with torch.compile (enforce_eager: false) beside the "
                        "eager one (engine start is reported apart).")
    p.add_argument("--skip", action="append", default=[], choices=["naive", "hf", "vllm"], help="Skip a system.")
    p.add_argument("--out", default=str(ROOT / "runs" / "bench" / "judge_throughput.json"), help="JSON output.")
    args = p.parse_args(argv)
    if not 1 <= args.naive_n <= args.n:
        p.error(f"--naive-n must be in [1, --n={args.n}], got {args.naive_n}")

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(args.kv_cache_gib))
    from judge.core._env import apply_runtime_defaults

    apply_runtime_defaults()
    from transformers import AutoTokenizer

    from judge.backends import create_backend
    from judge.backends._models import resolve_model

    model_dir = resolve_model(args.model)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    # A new set of items per repeat (the same sets for every system), so that no engine sees a
    # prompt twice: only the rubric's shared prefix is ever cached, as in a real job.
    item_sets = [make_items(args.n, tokenizer, args.item_tokens, seed=k) for k in range(args.repeats)]
    warmup = make_items(4, tokenizer, args.item_tokens, seed=1000)
    every = [(i.prompt, i.response) for items in item_sets + [warmup] for i in items]
    assert len(set(every)) == len(every), "items must be distinct"

    from judge.inputs._rubric import resolve_rubric
    from judge.scoring import Judge

    rubric = resolve_rubric(args.rubric)
    if rubric.mode != "pointwise":
        p.error(f"--rubric must be a pointwise rubric, got {args.rubric!r} ({rubric.mode})")

    setup: dict[str, float] = {}
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="judge-bench-") as tmpdir:
        tmp = Path(tmpdir)
        # The naive loop sends the judge prompt a user would: the rubric's messages, which ask for
        # the JSON verdict, with the job's max_tokens (no prefill, no constraint).
        job = _job([], tmp / "plan", args, model_dir, method="json")
        naive_judge = Judge.from_spec(job.model_copy(update={"rubrics": [args.rubric]}))
        naive_requests = [[naive_judge.requests(item)[0] for item in items[: args.naive_n]] for items in item_sets]
        naive_warmup = [naive_judge.requests(item)[0] for item in warmup]
        # The systems alternate, repeat after repeat, so that a change in the machine's load
        # during the run hits them alike; each reports its fastest repeat.
        backends: dict[str, Any] = {}
        runs: dict[str, list[dict[str, Any]]] = {}
        try:
            if "naive" not in args.skip:
                print("naive loop: loading ...", file=sys.stderr, flush=True)
                t0 = time.perf_counter()
                backends["naive"] = NaiveLoop(model_dir, args)
                setup["naive_load_s"] = time.perf_counter() - t0
            if "hf" not in args.skip:
                print("hf backend: loading ...", file=sys.stderr, flush=True)
                t0 = time.perf_counter()
                backends["hf"] = create_backend("hf", model=model_dir, dtype=args.dtype, batch_size=args.hf_batch_size)
                setup["hf_load_s"] = time.perf_counter() - t0
            vllm_options = dict(
                model=model_dir,
                dtype=args.dtype,
                max_model_len=2048,
                enforce_eager=not args.compile,
                enable_prefix_caching=not args.no_prefix_caching,
                max_num_seqs=args.max_num_seqs,
                **({"max_num_batched_tokens": args.max_num_batched_tokens} if args.max_num_batched_tokens else {}),
                **({"block_size": args.block_size} if args.block_size else {}),
            )
            if "vllm" not in args.skip:
                print("vllm backend: starting the engine ...", file=sys.stderr, flush=True)
                t0 = time.perf_counter()
                backends["vllm"] = create_backend("vllm", **vllm_options)
                setup["vllm_engine_start_s"] = time.perf_counter() - t0
            if args.separate_engine:
                print("vllm backend, engine in its own processes: starting ...", file=sys.stderr, flush=True)
                t0 = time.perf_counter()
                backends["vllm-separate"] = create_backend("vllm", in_process=False, **vllm_options)
                setup["vllm_separate_engine_start_s"] = time.perf_counter() - t0
            if args.compiled_engine:
                print("vllm backend, torch.compile: starting the engine ...", file=sys.stderr, flush=True)
                t0 = time.perf_counter()
                backends["vllm-compiled"] = create_backend("vllm", **{**vllm_options, "enforce_eager": False})
                setup["vllm_compiled_engine_start_s"] = time.perf_counter() - t0
            runs = {name: [] for name in backends}
            if "vllm" in backends and not args.no_floor:
                runs["floor"], runs["prompts"] = [], []
            for k in range(args.repeats):
                for name, be in backends.items():
                    print(f"{name}: repeat {k + 1}/{args.repeats} ...", file=sys.stderr, flush=True)
                    if name == "naive":
                        runs[name].append(be.run(naive_requests[k], naive_warmup))
                    else:
                        runs[name].append(run_product(name, be, item_sets[k], warmup, args, tmp, k, model_dir))
                    if name == "vllm" and "floor" in runs:
                        print(f"floor: repeat {k + 1}/{args.repeats} ...", file=sys.stderr, flush=True)
                        runs["floor"].append(run_floor(be, item_sets[k], tokenizer, args))
                        print(f"the judge's prompts, bare: repeat {k + 1}/{args.repeats} ...", file=sys.stderr, flush=True)
                        runs["prompts"].append(run_bare_prompts(be, runs["vllm"][k]["prompt_ids"], args))
                report(runs, setup, load_start, args, final=False)
        finally:
            for be in backends.values():
                be.close()

    report(runs, setup, load_start, args, final=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
