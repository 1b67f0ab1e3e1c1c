"""Score plans: how a rubric's verdict is asked for, chosen by ``scoring.method``.

- **logprob** (G-Eval style, the default wherever the rubric allows): the judge's answer is
  prefilled up to the first verdict value (``{"helpfulness": `` or ``{"winner": "``) and the
  continuation is constrained to the rubric's values, so each criterion costs one generated token.
  A rubric with ``rationale: true`` instead writes ``{"rationale": ..., <verdict>}`` under its JSON
  schema and the verdict tokens' logprobs are read the same way after the rationale.
- **json**: the judge writes the JSON object; the verdict is what it wrote.

Planning takes plain values (method, top-k, max tokens, the judge's tokenizer), never a job config.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any, Literal

from judge.core._errors import ConfigError, JudgeloopError
from judge.core._records import SamplingParams
from judge.inputs._prompts import output_schema
from judge.inputs._rubric import Rubric

__all__ = ["Method", "ScorePlan", "judge_tokenizer", "sampling_for", "score_plan", "verdict_values"]

Method = Literal["json", "logprob"]

#: Above this many value combinations a multi-criterion rubric is read from its JSON schema instead
#: of a list of choices (the constraint grammar grows with the product of the scales).
_MAX_COMBINATIONS = 2048


@dataclass(frozen=True)
class ScorePlan:
    """How the judge is asked for a rubric's verdict and how its answer is read.

    Attributes:
        method: ``logprob`` (verdict read from the verdict tokens' logprobs) or ``json``.
        prefill: the start of the judge's answer (logprob without rationale), or None.
        choices: the allowed continuations of the prefill, or None (the JSON schema applies).
        max_tokens: tokens to generate.
        logprobs: top-k logprobs per generated token (logprob method), or None.
        reason: why this method was chosen (``auto`` falls back to json when it must).
    """

    method: Method
    prefill: str | None = None
    choices: tuple[str, ...] | None = None
    max_tokens: int = 256
    logprobs: int | None = None
    reason: str = ""



def verdict_values(rubric: Rubric) -> list[tuple[str, list[str]]]:
    """Each answer key with its allowed values rendered as JSON (``"A"``, ``5``)."""
    if rubric.mode == "pairwise":
        return [("winner", [json.dumps(w) for w in (["A", "B", "tie"] if rubric.allow_tie else ["A", "B"])])]
    out = []
    for c in rubric.criteria:
        assert c.scale is not None
        out.append((c.name, [str(level) for level in c.scale]))
    return out


def _head(key: str) -> str:
    return "{" + json.dumps(key) + ": "


def _split_value(tokenizer: Any, key: str, value: str) -> tuple[int, str] | None:
    """Where the judge's tokens break ``{"key": value}`` around the value.

    Returns ``(cut, first_token)``: the offset of the token that carries the value's first
    significant character (the prefill ends there, so the model resumes at a natural token
    boundary) and that token's text.
    """
    head = _head(key)
    text = head + value + "}"
    sig = len(head) + (1 if value.startswith('"') else 0)
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = [tuple(o) for o in enc["offset_mapping"]]
    except Exception:  # slow tokenizers have no offsets: rebuild them from the decoded pieces
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        offsets, pos = [], 0
        for t in ids:
            piece = tokenizer.decode([t])
            offsets.append((pos, pos + len(piece)))
            pos += len(piece)
        if pos != len(text):
            return None
    for a, b in offsets:
        if a <= sig < b:
            return a, text[a:b]
    return None


def _plan_values(rubric: Rubric, tokenizer: Any | None) -> dict[str, int] | None:
    """Per key, the offset in ``{"key": value`` where the value's first token starts; None if unreadable.

    A verdict can be read from logprobs only if each value of each key starts with a token of its
    own (``1`` and ``10`` share their first token on most tokenizers, so a 1-10 scale cannot).
    """
    cuts: dict[str, int] = {}
    for key, values in verdict_values(rubric):
        if tokenizer is None:
            firsts = [v.lstrip('"')[:1] for v in values]
            if len(set(firsts)) != len(firsts):
                return None
            cuts[key] = len(_head(key)) + (1 if values[0].startswith('"') else 0)
            continue
        splits = [_split_value(tokenizer, key, v) for v in values]
        if any(sp is None for sp in splits):
            return None
        if len({sp[0] for sp in splits}) != 1:  # type: ignore[index]
            return None
        firsts = [sp[1] for sp in splits]  # type: ignore[index]
        if len(set(firsts)) != len(firsts):
            return None
        cuts[key] = splits[0][0]  # type: ignore[index]
    return cuts




def _logprob_plan(rubric: Rubric, top_logprobs: int, max_tokens: int, tokenizer: Any | None) -> ScorePlan | str:
    """The logprob plan of ``rubric``, or the reason it has none."""
    cuts = _plan_values(rubric, tokenizer)
    if cuts is None:
        return "a verdict value does not start with a token of its own for this judge's tokenizer"
    k = top_logprobs
    if rubric.rationale:
        # Rationale first, then the verdict, under the rubric's schema; logprobs read after it.
        return ScorePlan(method="logprob", max_tokens=max_tokens, logprobs=k, reason="rationale before the verdict")
    values = verdict_values(rubric)
    first_key, first_values = values[0]
    cut = cuts[first_key]
    prefill = (_head(first_key) + first_values[0])[:cut]
    n_combos = math.prod(len(v) for _, v in values)
    if n_combos > _MAX_COMBINATIONS:
        return ScorePlan(
            method="logprob",
            max_tokens=max_tokens,
            logprobs=k,
            reason=f"{n_combos} value combinations: read from the JSON schema",
        )
    choices = []
    for combo in product(*(v for _, v in values)):
        # A lone string value stops before its closing quote: the verdict is its first token.
        tail = (_head(first_key) + combo[0])[cut:]
        if len(values) == 1:
            tail = tail.rstrip('"') if combo[0].startswith('"') else tail
        else:
            tail += "".join(f", {json.dumps(key)}: {value}" for (key, _), value in zip(values[1:], combo[1:])) + "}"
        choices.append(tail)
    if tokenizer is not None:
        base = len(tokenizer(prefill, add_special_tokens=False)["input_ids"])
        n_tokens = max(len(tokenizer(prefill + c, add_special_tokens=False)["input_ids"]) - base for c in choices)
    else:
        n_tokens = max(len(c) for c in choices)
    return ScorePlan(
        method="logprob",
        prefill=prefill,
        choices=tuple(choices),
        max_tokens=max(1, n_tokens),
        logprobs=k,
        reason="one constrained token per criterion after a prefill",
    )


_TOKENIZERS: dict[str, Any] = {}
_PLANS: dict[tuple[Any, ...], ScorePlan] = {}
_LOCK = threading.Lock()


def judge_tokenizer(backend: str, model: str) -> Any | None:
    """The judge's tokenizer when ``model`` names a local model directory, else None.

    Used only to decide how verdict values split into tokens; a remote judge whose served name is
    no local directory falls back to the rule that values with distinct first characters start
    with distinct tokens. (``backend`` is accepted so that a backend-specific rule can be added.)
    """
    from judge.backends._models import resolve_model

    try:
        path = resolve_model(model)
    except JudgeloopError:
        return None
    root = Path(path)
    if not any((root / f).exists() for f in ("tokenizer.json", "tokenizer_config.json")):
        return None
    with _LOCK:
        if path not in _TOKENIZERS:
            _TOKENIZERS[path] = _load_tokenizer(root)
        return _TOKENIZERS[path]


class _TokenizersAdapter:
    """The slice of the transformers tokenizer interface planning needs, on the ``tokenizers``
    library alone (importing transformers pulls in torch: seconds, for a job that may not need it)."""

    def __init__(self, tok: Any) -> None:
        self._tok = tok

    def __call__(self, text: str, add_special_tokens: bool = False, return_offsets_mapping: bool = False) -> dict:
        enc = self._tok.encode(text, add_special_tokens=add_special_tokens)
        out: dict[str, Any] = {"input_ids": list(enc.ids)}
        if return_offsets_mapping:
            out["offset_mapping"] = [tuple(o) for o in enc.offsets]
        return out

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids, skip_special_tokens=False)


def _load_tokenizer(root: Path) -> Any | None:
    if (root / "tokenizer.json").exists():
        try:
            from tokenizers import Tokenizer

            return _TokenizersAdapter(Tokenizer.from_file(str(root / "tokenizer.json")))
        except Exception:
            pass
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(root))
    except Exception:
        return None




def score_plan(
    rubric: Rubric,
    method: Literal["auto", "logprob", "json"] = "auto",
    top_logprobs: int = 20,
    max_tokens: int = 256,
    tokenizer: Any | None = None,
) -> ScorePlan:
    """How ``rubric``'s verdicts are asked for and read.

    Args:
        rubric: the rubric.
        method: ``auto`` (logprob wherever the rubric's values can be read from their first
            tokens, else json), ``logprob`` or ``json`` (``scoring.method``).
        top_logprobs: top-k logprobs read at each verdict token.
        max_tokens: tokens the judge may generate when it writes (json, or a rationale).
        tokenizer: the judge's tokenizer (see :func:`judge_tokenizer`); None assumes that values
            with distinct first characters start with distinct tokens.

    Raises:
        ConfigError: ``method: logprob`` was asked for a rubric whose values cannot be read from
            their first tokens (``auto`` falls back to json instead).
    """
    if method == "json":
        return ScorePlan(method="json", max_tokens=max_tokens, reason="scoring.method: json")
    # Tokenizers are kept for the process (see judge_tokenizer), so their id names one tokenizer.
    key = (rubric.content_hash, method, top_logprobs, max_tokens, id(tokenizer))
    with _LOCK:
        cached = _PLANS.get(key)
    if cached is not None:
        return cached
    plan = _logprob_plan(rubric, top_logprobs, max_tokens, tokenizer)
    if isinstance(plan, str):
        if method == "logprob":
            levels = ", ".join(f"{k}: {v}" for k, v in verdict_values(rubric))
            raise ConfigError(
                f"scoring.method logprob cannot read rubric {rubric.id!r}: {plan} ({levels}); "
                "use scoring.method: json or auto"
            )
        plan = ScorePlan(method="json", max_tokens=max_tokens, reason=f"auto: {plan}")
    if tokenizer is None or any(t is tokenizer for t in _TOKENIZERS.values()):
        with _LOCK:
            _PLANS[key] = plan
    return plan


def sampling_for(
    rubric: Rubric,
    plan: ScorePlan,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
) -> SamplingParams:
    """Decoding parameters of a rubric's requests: the judge's settings plus the verdict constraint.

    The json method (and logprob with a rationale) constrains the answer to the rubric's JSON
    schema; logprob without rationale constrains the continuation of its prefill to the choices.
    """
    return SamplingParams(
        temperature=temperature,
        top_p=top_p,
        max_tokens=plan.max_tokens,
        seed=seed,
        logprobs=plan.logprobs,
        json_schema=None if plan.choices is not None else output_schema(rubric),
        choices=list(plan.choices) if plan.choices is not None else None,
    )
