"""Fitting an item's requests into the judge's context before they are sent.

A backend refuses a prompt that cannot fit (``Completion.error_kind == "too_long"``), but the
driver can find out sooner, and can do something about it: :func:`fit_item` counts the exact
tokens of every request an item makes (chat template and prefill included, by the same code the
local backends render with, :func:`judge.backends._chat.render_chat_ids`), and under the
``middle`` truncation policy shortens the item's *judged texts* until they fit.

Truncation works on the item, before rendering, so the prompt's fences, instructions and
defences (:mod:`judge.inputs._prompts`) are never cut: only the material inside the data blocks
is. The longest texts are shortened first (to a common length, so a long response is cut before a
short reference), each by cutting its middle and putting a visible marker in its place
(``[… 812 tokens cut …]``), so the judge sees that something is missing. The user prompt is never
cut: it is the question the responses answer. What was cut is returned per field, for the
judgment's ``extra.truncation``.

>>> fit = fit_item(item, lambda it: [r.messages for r in judge.requests(it)],
...                tokenizer=tok, context_length=4096, max_tokens=48, policy="middle")  # doctest: +SKIP
>>> fit.item if fit.fits else fit.error                                               # doctest: +SKIP
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field

from judge.backends._base import Prompt, too_long_message
from judge.backends._chat import prompt_token_bound, render_chat_ids
from judge.core._records import Item

__all__ = [
    "TRUNCATABLE_FIELDS",
    "FitResult",
    "TruncationPolicy",
    "chat_tokenizer",
    "count_request_tokens",
    "fit_item",
    "truncation_marker",
]

#: ``none``: an item that cannot fit is refused with its reason; ``middle``: its judged texts are
#: shortened by cutting their middle until it fits.
TruncationPolicy = Literal["none", "middle"]

#: The item fields truncation may shorten: the judged texts, never the user prompt.
TRUNCATABLE_FIELDS = ("response", "response_a", "response_b", "reference")

#: Tokens every cut text keeps at least (half from its start, half from its end): below this a
#: text is no longer worth judging, and the item is refused instead.
MIN_KEEP = 16

#: Tokens set aside per cut text for its marker and the line breaks around it (the marker of a
#: five-digit cut is ~12 tokens in the bundled model's vocabulary); re-counting settles the rest.
_MARKER_ALLOWANCE = 16
_MAX_ROUNDS = 6


def truncation_marker(tokens_cut: int) -> str:
    """The visible marker that replaces the middle of a cut text."""
    return f"[… {tokens_cut} tokens cut …]"


class FitResult(BaseModel):
    """Whether an item's requests fit the judge's context, and the item to render if they do."""

    model_config = ConfigDict(extra="forbid")

    item: Item = Field(description="The item to render: the original, or a copy with its judged texts cut.")
    prompt_tokens: int = Field(ge=0, description="Tokens of the item's longest request, as it will be sent.")
    available: int = Field(description="Prompt tokens the context leaves: context_length - max_tokens.")
    truncation: dict[str, int] = Field(
        default_factory=dict,
        description="Field -> tokens cut from its middle (empty when nothing was cut); record it as the "
        "judgment's extra.truncation.",
    )
    error: str | None = Field(
        default=None,
        description="Why the item cannot be judged ('needs N prompt tokens + M generated, context is C'); "
        "None when it fits.",
    )

    @property
    def fits(self) -> bool:
        """True when the item (as in :attr:`item`) can be sent."""
        return self.error is None

    def extra(self) -> dict[str, Any]:
        """What the judgment's ``extra`` records: ``{"truncation": {field: tokens_cut}}``, or nothing."""
        return {"truncation": dict(self.truncation)} if self.truncation else {}


_TOKENIZERS: dict[str, Any] = {}
_LOCK = threading.Lock()


def chat_tokenizer(model_dir: str | Path) -> Any:
    """The transformers tokenizer (with its chat template) of a local model directory, cached.

    A local backend's own ``backend.tokenizer`` is the same object and can be passed instead.
    """
    key = str(Path(model_dir).resolve())
    with _LOCK:
        if key not in _TOKENIZERS:
            from transformers import AutoTokenizer

            _TOKENIZERS[key] = AutoTokenizer.from_pretrained(key)
        return _TOKENIZERS[key]


def count_request_tokens(messages: Prompt, tokenizer: Any | None) -> int:
    """The tokens ``messages`` reach the model as, chat template and prefill included.

    Exact with a tokenizer that has a chat template (a transformers tokenizer: what the local
    backends render with). Without one (a remote judge whose tokenizer is not at hand) an upper
    bound (:func:`judge.backends._chat.prompt_token_bound`): a request under it surely fits.
    """
    if tokenizer is not None and hasattr(tokenizer, "apply_chat_template"):
        return len(render_chat_ids(tokenizer, messages))
    return prompt_token_bound(messages)


def fit_item(
    item: Item,
    render: Callable[[Item], list[Prompt]],
    *,
    tokenizer: Any | None,
    context_length: int,
    max_tokens: int,
    policy: TruncationPolicy = "none",
) -> FitResult:
    """Check that every request of ``item`` fits the context; under ``middle``, cut it until it does.

    Args:
        item: the item (its texts untrusted; never changed in place).
        render: the messages of every request the item makes, e.g.
            ``lambda it: [r.messages for r in judge.requests(it)]`` (both orders of a pair, every
            rubric); called again on each shortened copy, so sanitising and fences are counted.
        tokenizer: the judge's chat tokenizer (:func:`chat_tokenizer`, or a local backend's
            ``tokenizer``); None for a remote judge: counts are then upper bounds, and ``middle``
            cannot cut by tokens (the item is refused with its bound instead).
        context_length: the judge's context (vLLM's ``max_model_len``).
        max_tokens: the most tokens a request may generate (the largest of the item's requests).
        policy: ``none`` (refuse an item that does not fit) or ``middle``.

    Returns:
        The item to send (cut or not), its longest request's tokens and what was cut; or, when it
        cannot fit even with every judged text cut to :data:`MIN_KEEP` tokens, the reason.

    Raises:
        ValueError: an unknown policy, or a context that leaves no room for the prompt.
    """
    if policy not in ("none", "middle"):
        raise ValueError(f"truncation policy must be 'none' or 'middle', got {policy!r}")
    available = context_length - max_tokens
    if available < 1:
        raise ValueError(f"max_tokens {max_tokens} leaves no prompt room in a context of {context_length}")

    def longest(it: Item) -> int:
        return max((count_request_tokens(m, tokenizer) for m in render(it)), default=0)

    need = longest(item)
    if need <= available:
        return FitResult(item=item, prompt_tokens=need, available=available)
    refused = FitResult(
        item=item, prompt_tokens=need, available=available, error=too_long_message(need, max_tokens, context_length)
    )
    if policy == "none" or tokenizer is None:
        return refused

    texts = {f: getattr(item, f) for f in TRUNCATABLE_FIELDS if getattr(item, f)}
    encoded = {f: _encode(tokenizer, t) for f, t in texts.items()}
    keep = {f: len(ids) for f, (ids, _) in encoded.items()}
    current, cut = item, {}
    for _ in range(_MAX_ROUNDS):
        shortened = {f for f in keep if keep[f] < len(encoded[f][0])}
        excess = need - available + _MARKER_ALLOWANCE * (len(keep) - len(shortened))
        keep = _level_down(keep, excess)
        if keep is None:
            break  # every judged text is already at its minimum
        updates, cut = {}, {}
        for f, n_keep in keep.items():
            ids, offsets = encoded[f]
            if n_keep < len(ids):
                updates[f] = _cut_middle(texts[f], ids, offsets, n_keep, tokenizer)
                cut[f] = len(ids) - n_keep
        current = item.model_copy(update=updates)
        need = longest(current)
        if need <= available:
            return FitResult(item=current, prompt_tokens=need, available=available, truncation=cut)
    what = ", ".join(f for f in TRUNCATABLE_FIELDS if f in texts) or "no judged text"
    return refused.model_copy(
        update={"error": f"{refused.error}; cutting the middle of {what} still leaves {need} prompt tokens"}
    )


def _encode(tokenizer: Any, text: str) -> tuple[list[int], list[tuple[int, int]] | None]:
    """Token ids of ``text`` alone, with character offsets when the tokenizer gives them."""
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
    except (TypeError, KeyError, NotImplementedError, ValueError):  # a slow tokenizer: no offsets
        return list(tokenizer(text, add_special_tokens=False)["input_ids"]), None


def _level_down(keep: dict[str, int], excess: int) -> dict[str, int] | None:
    """Lower the longest texts to a common level so that ``excess`` more tokens go (water-filling).

    None when no text can lose another token without going under :data:`MIN_KEEP`.
    """
    room = sum(max(0, k - MIN_KEEP) for k in keep.values())
    if room == 0:
        return None
    if excess >= room:
        return {f: min(k, MIN_KEEP) for f, k in keep.items()}
    lo, hi = MIN_KEEP, max(keep.values())  # the highest level that frees at least ``excess``
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(max(0, k - mid) for k in keep.values()) >= excess:
            lo = mid
        else:
            hi = mid - 1
    return {f: min(k, lo) for f, k in keep.items()}


def _cut_middle(
    text: str, ids: list[int], offsets: list[tuple[int, int]] | None, n_keep: int, tokenizer: Any
) -> str:
    """``text`` with its middle ``len(ids) - n_keep`` tokens replaced by a visible marker.

    Cut on character offsets when the tokenizer gives them, so a multi-byte character is never
    split; otherwise the kept token runs are decoded.
    """
    head, tail = (n_keep + 1) // 2, n_keep // 2
    n = len(ids)
    if offsets is not None:
        start = text[: offsets[head - 1][1]] if head else ""
        end = text[offsets[n - tail][0] :] if tail else ""
    else:
        start = tokenizer.decode(ids[:head]) if head else ""
        end = tokenizer.decode(ids[n - tail :]) if tail else ""
    return f"{start}\n{truncation_marker(n - n_keep)}\n{end}"
