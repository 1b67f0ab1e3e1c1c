"""A tiny Llama built locally (hidden 64, 2 layers) with a byte-level BPE tokenizer trained here.

Small enough that a few training steps take well under a second, real enough that TRL runs its
full code path (tokenising with the chat template, reference log-probs, optimiser steps).
"""

from __future__ import annotations

import json
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

PROMPTS = [
    "Name a colour.",
    "What is two plus two?",
    "Say hello.",
    "Give a fruit.",
    "Which animal barks?",
    "Name a planet.",
    "What is the capital of France?",
    "Count to three.",
]
GOOD = ["Blue.", "Four.", "Hello!", "An apple.", "A dog.", "Mars.", "Paris.", "One, two, three."]
BAD = ["I refuse.", "Seven hundred.", "No.", "A rock.", "A fish, maybe.", "The sun.", "Berlin.", "Ten."]


def build_tiny_model(path: Path, seed: int = 0) -> Path:
    """Write a randomly initialised tiny Llama and its tokenizer (with a chat template) to ``path``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|pad|>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = PROMPTS + GOOD + BAD
    tok.train_from_iterator(
        corpus * 4,
        trainers.BpeTrainer(vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()),
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<|pad|>", eos_token="<|end|>", bos_token=None, unk_token=None
    )
    fast.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        pad_token_id=fast.pad_token_id,
        eos_token_id=fast.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(cfg).to(torch.float32)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return path


def preference_rows() -> list[dict]:
    """DPO / reward rows in TRL's conversational format."""
    return [
        {
            "prompt": [{"role": "user", "content": p}],
            "chosen": [{"role": "assistant", "content": g}],
            "rejected": [{"role": "assistant", "content": b}],
        }
        for p, g, b in zip(PROMPTS, GOOD, BAD)
    ]


def kto_rows() -> list[dict]:
    """Unpaired KTO rows: each prompt once with a desirable and once with an undesirable completion."""
    rows = []
    for p, g, b in zip(PROMPTS, GOOD, BAD):
        rows.append({"prompt": [{"role": "user", "content": p}], "completion": [{"role": "assistant", "content": g}], "label": True})
        rows.append({"prompt": [{"role": "user", "content": p}], "completion": [{"role": "assistant", "content": b}], "label": False})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def load_weights(model_dir: Path) -> dict:
    """Every tensor of a saved model directory, by name."""
    from safetensors.torch import load_file

    tensors = {}
    for f in sorted(Path(model_dir).glob("*.safetensors")):
        tensors.update(load_file(str(f)))
    return tensors


def changed_tensors(before_dir: Path, after_dir: Path) -> tuple[int, int]:
    """(tensors that changed, tensors compared) between two checkpoints, over the names they share.

    A reward model shares the backbone's names (``model.*``) with the causal LM it started from; its
    new ``score`` head has no counterpart and is not compared.
    """
    import torch

    a, b = load_weights(before_dir), load_weights(after_dir)
    shared = sorted(set(a) & set(b))
    assert shared, f"no shared tensor names: {sorted(a)[:3]} vs {sorted(b)[:3]}"
    # float32 on both sides: a bf16 base and its float32 checkpoint compare equal where nothing moved.
    return sum(1 for k in shared if not torch.equal(a[k].float(), b[k].float())), len(shared)
