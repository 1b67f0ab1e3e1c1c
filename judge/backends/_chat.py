"""Chat-template rendering shared by the local backends (vllm, hf).

Both render prompts to token ids with the same code, so the same prompt reaches the model as the
same tokens whichever engine runs it. Special tokens of the model (``<|im_start|>`` and friends)
that appear inside message contents are broken with a zero-width space: a judged text that
contains them must not be able to open a fake system or assistant turn.
"""

from __future__ import annotations

from typing import Any, Sequence

from judge.backends._base import Prompt, split_prefill
from judge.core._records import Message

_ZWSP = "\u200b"


def _special_strings(tokenizer: Any) -> list[str]:
    cached = getattr(tokenizer, "_judgeloop_specials", None)
    if cached is None:
        specials = set(getattr(tokenizer, "all_special_tokens", []) or [])
        try:
            specials |= set(tokenizer.get_added_vocab())
        except Exception:  # some tokenizers have no added vocab
            pass
        cached = sorted((s for s in specials if len(s) > 1), key=len, reverse=True)
        try:
            tokenizer._judgeloop_specials = cached
        except Exception:
            pass
    return cached


def neutralize_special_tokens(text: str, tokenizer: Any) -> str:
    """Insert a zero-width space into every special-token string found in ``text``."""
    for s in _special_strings(tokenizer):
        if s in text:
            text = text.replace(s, s[0] + _ZWSP + s[1:])
    return text


def render_chat_text(tokenizer: Any, prompt: Prompt) -> str:
    """The chat-templated text of ``prompt`` (continuing a final assistant message if present)."""
    msgs, prefill = split_prefill(prompt)
    msgs = [{"role": m["role"], "content": neutralize_special_tokens(m["content"], tokenizer)} for m in msgs]
    if prefill is not None:
        return tokenizer.apply_chat_template(
            msgs, tokenize=False, add_generation_prompt=False, continue_final_message=True
        )
    return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)


def render_chat_ids(tokenizer: Any, prompt: Prompt) -> list[int]:
    """Token ids of ``prompt``; the template supplies any BOS itself, so none is added here."""
    return list(tokenizer(render_chat_text(tokenizer, prompt), add_special_tokens=False)["input_ids"])


def count_prompt_tokens(tokenizer: Any, prompt: Prompt) -> int:
    """The exact number of tokens ``prompt`` reaches the model as: chat template and prefill included."""
    return len(render_chat_ids(tokenizer, prompt))


#: Tokens a chat template may add around the messages: role headers, a default system prompt
#: (SmolLM2 adds one of ~20 tokens, Llama 3 a dated one of ~25), begin/end markers.
TEMPLATE_ALLOWANCE = 256
#: Tokens a template may add per message (role header and end-of-turn markers).
PER_MESSAGE_ALLOWANCE = 16


def prompt_token_bound(prompt: Sequence[Message | dict[str, str]]) -> int:
    """An upper bound on ``prompt``'s token count without its tokenizer.

    Every token of a BPE, byte-level or byte-fallback tokenizer covers at least one byte of the
    text, so a text has at most as many tokens as UTF-8 bytes; the template adds at most the
    allowances above. A prompt under this bound surely fits; one over it needs an exact count.
    """
    contents = (m["content"] if isinstance(m, dict) else m.content for m in prompt)
    body = sum(len(c.encode("utf-8")) for c in contents)
    return body + PER_MESSAGE_ALLOWANCE * len(prompt) + TEMPLATE_ALLOWANCE
