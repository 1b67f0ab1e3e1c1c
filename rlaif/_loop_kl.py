"""KL of a round's policy to the starting policy, measured directly on its evaluation answers.

For every evaluation answer, the per-token log-probabilities of the answer given its prompt (the
chat template with the generation prompt) under the round's policy and under the starting policy;
:func:`~rlaif._monitor_metrics.sequence_kl` turns them into a KL estimate (``k3``, never negative).
The answers are the policy's greedy ones, so this is KL on the policy's modes rather than a sampled
estimate: a monitor of drift, recorded as ``logprobs:k3``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["answer_logprobs", "eval_answers"]


def eval_answers(path: Path) -> list[tuple[str, str]]:
    """(prompt, answer) of every generated answer in a candidates file."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            if rec.get("response"):
                out.append((rec["prompt"], rec["response"]))
    return out


def answer_logprobs(model_dir: str, pairs: list[tuple[str, str]]) -> list[list[float]]:
    """Per answer, the log-probability of each of its tokens given the prompt, under ``model_dir`` (float32, CPU)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    out: list[list[float]] = []
    with torch.no_grad():
        for prompt, answer in pairs:
            head = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                           tokenize=True, return_dict=False)
            head_ids = list(head["input_ids"] if isinstance(head, dict) else head)
            ans_ids = tok(answer, add_special_tokens=False)["input_ids"]
            if not ans_ids:
                out.append([])
                continue
            ids = torch.tensor([head_ids + ans_ids])
            logits = model(ids).logits[0, len(head_ids) - 1 : -1].float()
            lp = torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(ans_ids)[:, None])[:, 0]
            out.append(lp.tolist())
    del model
    return out


def policy_kl(policy: str, reference: str, answers: Path) -> dict[str, Any]:
    """The inputs :func:`~rlaif._monitors.measure_round` takes for the KL, measured on ``answers``."""
    pairs = eval_answers(answers)
    if not pairs:
        return {}
    p = answer_logprobs(policy, pairs)
    q = p if Path(policy).resolve() == Path(reference).resolve() else answer_logprobs(reference, pairs)
    keep = [i for i, row in enumerate(p) if row]
    return {"policy_logprobs": [p[i] for i in keep], "reference_logprobs": [q[i] for i in keep], "kl_estimator": "k3"}
