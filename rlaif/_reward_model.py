"""Scoring with a reward model trained by ``judgeloop train reward``.

The checkpoint is a transformers sequence-classification model with one output (the Bradley-Terry
score) and its tokenizer, so anything that loads ``AutoModelForSequenceClassification`` can use it.
:class:`RewardModel` is that, with the same chat template the trainer used, and a TRL reward-function
signature so it can score completions inside ``GRPOTrainer(reward_funcs=[...])``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["RewardModel"]

Messages = list[dict[str, str]]


class RewardModel:
    """A trained reward model, loaded in float32 on CPU (or the given device)."""

    def __init__(self, path: str | Path, device: str = "cpu", batch_size: int = 8) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.path = str(path)
        self.batch_size = batch_size
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForSequenceClassification.from_pretrained(self.path, dtype=torch.float32).to(device).eval()
        self.device = device

    def score(self, prompts: list[Messages], completions: list[Messages]) -> list[float]:
        """One score per (prompt, completion): higher is preferred. Texts are data, never instructions."""
        if len(prompts) != len(completions):
            raise ValueError(f"got {len(prompts)} prompts for {len(completions)} completions")
        texts = [
            self.tokenizer.apply_chat_template(list(p) + list(c), tokenize=False)
            for p, c in zip(prompts, completions)
        ]
        scores: list[float] = []
        for i in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(
                texts[i : i + self.batch_size], return_tensors="pt", padding=True, add_special_tokens=False
            ).to(self.device)
            with self._torch.no_grad():
                logits = self.model(**batch).logits
            scores.extend(float(x) for x in logits[:, 0])
        return scores

    def __call__(self, prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float]:
        """TRL's reward-function signature (conversational prompts and completions)."""
        return self.score(prompts, completions)
