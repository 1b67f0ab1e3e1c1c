"""Turning judge output into scores.

A verdict that cannot be read is *unscored*: the raw text and the reason are kept and no number is
invented. Parsing is strict about the rubric (every criterion present, each value on its scale) and
lenient only about wrapping (code fences or prose around a single JSON object).

Two ways to ask for a verdict (:class:`ScorePlan`, chosen by ``scoring.method``):

- **logprob** (G-Eval style, the default wherever the rubric allows): the judge's answer is
  prefilled up to the first verdict value (``{"helpfulness": `` or ``{"winner": "``) and the
  continuation is constrained to the rubric's values, so each criterion costs one generated token.
  The top logprobs at that token give the distribution over the scale: the expected score, its
  entropy and margin (confidence), or for pairs the probability that each response wins. A rubric
  with ``rationale: true`` instead writes ``{"rationale": ..., <verdict>}`` under its JSON schema
  and the verdict tokens' logprobs are read the same way after the rationale.
- **json**: the judge writes the JSON object; the verdict is what it wrote.

Pairwise judgments report winners and probabilities in terms of the *item's* response_a/response_b,
whichever order they were shown in: the mapping swaps labels explicitly (never ``1 - x``
arithmetic, which would turn a failure marker into a verdict).
"""

from __future__ import annotations

import json
import math
import re
import threading
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any, Literal

from judge.core._errors import ConfigError, JudgeloopError
from judge.backends._base import Completion, TokenLogprob
from judge.core._config import JobConfig
from judge.inputs._prompts import output_schema, prompt_hash, render_messages
from judge.core._records import Item, JudgeInfo, JudgeRequest, Judgment, RubricRef, SamplingParams, stable_hash
from judge.inputs._rubric import Rubric

__all__ = [
    "ParsedVerdict",
    "ScorePlan",
    "VerdictReading",
    "build_requests",
    "extract_json_object",
    "item_fits",
    "judgment_from",
    "order_for",
    "parse_verdict",
    "read_logprobs",
    "request_key",
    "sampling_for",
    "score_plan",
]


@dataclass
class ParsedVerdict:
    """Scores or a pairwise winner read from one judge output; ``error`` set when unscored."""

    scores: dict[str, int] | None = None
    winner: str | None = None
    rationale: str | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def scored(self) -> bool:
        return self.error is None


def extract_json_object(text: str) -> dict[str, Any] | None:
    """The first complete top-level JSON object in ``text``, or None."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            obj, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
            continue
        if isinstance(obj, dict):
            return obj
        start = text.find("{", start + 1)
    return None


def parse_verdict(rubric: Rubric, text: str) -> ParsedVerdict:
    """Read a JSON verdict for ``rubric`` from the judge's text."""
    obj = extract_json_object(text)
    if obj is None:
        return ParsedVerdict(error="no JSON object in the output")
    rationale = obj.get("rationale")
    rationale = rationale if isinstance(rationale, str) else None
    if rubric.mode == "pairwise":
        winner = obj.get("winner")
        if not isinstance(winner, str):
            return ParsedVerdict(error="missing 'winner'", rationale=rationale)
        norm = {"a": "A", "b": "B", "tie": "tie"}.get(winner.strip().lower())
        if norm is None or (norm == "tie" and not rubric.allow_tie):
            allowed = "A, B, tie" if rubric.allow_tie else "A, B"
            return ParsedVerdict(error=f"winner must be one of {allowed}, got {winner!r}", rationale=rationale)
        return ParsedVerdict(winner=norm, rationale=rationale)
    scores: dict[str, int] = {}
    for c in rubric.criteria:
        assert c.scale is not None
        value = obj.get(c.name)
        if value is None:
            return ParsedVerdict(error=f"missing score for {c.name!r}", rationale=rationale)
        # ASCII digits only: str.isdigit() also accepts '²', which int() then rejects with a crash.
        if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value):
            value = int(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        # bool is an int (True == 1): without the check, true would score as 1.
        if isinstance(value, bool) or not isinstance(value, int) or value not in c.scale:
            return ParsedVerdict(
                error=f"{c.name} must be an integer in {c.min_score}..{c.max_score}, got {value!r}",
                rationale=rationale,
            )
        scores[c.name] = value
    return ParsedVerdict(scores=scores, rationale=rationale)


# ----------------------------------------------------------------------------------------------
# Score plans: how a rubric's verdict is asked for


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


def _verdict_values(rubric: Rubric) -> list[tuple[str, list[str]]]:
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
    for key, values in _verdict_values(rubric):
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


def _logprob_plan(rubric: Rubric, cfg: JobConfig, tokenizer: Any | None) -> ScorePlan | str:
    """The logprob plan of ``rubric``, or the reason it has none."""
    cuts = _plan_values(rubric, tokenizer)
    if cuts is None:
        return "a verdict value does not start with a token of its own for this judge's tokenizer"
    k = cfg.scoring.top_logprobs
    if rubric.rationale:
        # Rationale first, then the verdict, under the rubric's schema; logprobs read after it.
        return ScorePlan(
            method="logprob", max_tokens=cfg.sampling.max_tokens, logprobs=k, reason="rationale before the verdict"
        )
    values = _verdict_values(rubric)
    first_key, first_values = values[0]
    cut = cuts[first_key]
    prefill = (_head(first_key) + first_values[0])[:cut]
    n_combos = math.prod(len(v) for _, v in values)
    if n_combos > _MAX_COMBINATIONS:
        return ScorePlan(
            method="logprob",
            max_tokens=cfg.sampling.max_tokens,
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
        max_tokens = max(len(tokenizer(prefill + c, add_special_tokens=False)["input_ids"]) - base for c in choices)
    else:
        max_tokens = max(len(c) for c in choices)
    return ScorePlan(
        method="logprob",
        prefill=prefill,
        choices=tuple(choices),
        max_tokens=max(1, max_tokens),
        logprobs=k,
        reason="one constrained token per criterion after a prefill",
    )


_TOKENIZERS: dict[str, Any] = {}
_PLANS: dict[tuple[Any, ...], ScorePlan] = {}
_LOCK = threading.Lock()


def judge_tokenizer(cfg: JobConfig) -> Any | None:
    """The configured judge's tokenizer when it is a local model directory, else None.

    Used only to decide how verdict values split into tokens; a remote judge falls back to the
    rule that values with distinct first characters start with distinct tokens.
    """
    from judge.backends._models import resolve_model

    try:
        path = resolve_model(cfg.judge.model)
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


def score_plan(rubric: Rubric, cfg: JobConfig, tokenizer: Any | None = ...) -> ScorePlan:  # type: ignore[assignment]
    """How ``rubric``'s verdicts are asked for and read in job ``cfg``.

    Args:
        rubric: the rubric.
        cfg: the job (``scoring.method``, ``scoring.top_logprobs``, the judge, ``sampling``).
        tokenizer: the judge's tokenizer; by default the configured judge's (see
            :func:`judge_tokenizer`); None assumes distinct first characters are distinct tokens.

    Raises:
        ConfigError: ``method: logprob`` was asked for a rubric whose values cannot be read from
            their first tokens (``auto`` falls back to json instead).
    """
    method = cfg.scoring.method
    if method == "json":
        return ScorePlan(method="json", max_tokens=cfg.sampling.max_tokens, reason="scoring.method: json")
    key = (rubric.content_hash, method, cfg.scoring.top_logprobs, cfg.judge.backend, cfg.judge.model,
           cfg.sampling.max_tokens, tokenizer is ...)
    with _LOCK:
        cached = _PLANS.get(key) if tokenizer is ... else None
    if cached is not None:
        return cached
    tok = judge_tokenizer(cfg) if tokenizer is ... else tokenizer
    plan = _logprob_plan(rubric, cfg, tok)
    if isinstance(plan, str):
        if method == "logprob":
            levels = ", ".join(f"{k}: {v}" for k, v in _verdict_values(rubric))
            raise ConfigError(
                f"scoring.method logprob cannot read rubric {rubric.id!r}: {plan} ({levels}); "
                "use scoring.method: json or auto"
            )
        plan = ScorePlan(method="json", max_tokens=cfg.sampling.max_tokens, reason=f"auto: {plan}")
    if tokenizer is ...:
        with _LOCK:
            _PLANS[key] = plan
    return plan


# ----------------------------------------------------------------------------------------------
# Reading verdicts from logprobs


def _value_starts(text: str) -> dict[str, int]:
    """Offsets where each top-level key's value starts in a (possibly unfinished) JSON object.

    A structural scan that tracks strings and escapes, so a key quoted inside the rationale string
    (``"... \\"helpfulness\\": 5 ..."``) is never taken for the real one.
    """
    out: dict[str, int] = {}
    n = len(text)
    i = text.find("{")
    if i < 0:
        return out
    i += 1

    def skip_ws(j: int) -> int:
        while j < n and text[j] in " \t\r\n":
            j += 1
        return j

    def skip_string(j: int) -> int:  # j at the opening quote; returns the index after the closing one
        j += 1
        while j < n:
            if text[j] == "\\":
                j += 2
                continue
            if text[j] == '"':
                return j + 1
            j += 1
        return n

    while i < n:
        i = skip_ws(i)
        if i >= n or text[i] != '"':
            break
        k_end = skip_string(i)
        try:
            key = json.loads(text[i:k_end])
        except json.JSONDecodeError:
            break
        i = skip_ws(k_end)
        if i >= n or text[i] != ":":
            break
        i = skip_ws(i + 1)
        if i >= n:
            break
        out.setdefault(key, i)
        depth = 0
        while i < n:  # skip the value
            ch = text[i]
            if ch == '"':
                i = skip_string(i)
                continue
            if ch in "{[":
                depth += 1
            elif ch in "}]":
                if depth == 0:
                    break
                depth -= 1
            elif ch == "," and depth == 0:
                break
            i += 1
        if i < n and text[i] == ",":
            i += 1
        else:
            break
    return out


@dataclass
class VerdictReading:
    """The distribution over one key's values at its verdict token."""

    distribution: dict[str, float]
    mass: float
    entropy: float
    margin: float

    @property
    def confidence(self) -> float:
        """1 - entropy / log(number of values): 1 is certain, 0 is uniform."""
        k = len(self.distribution)
        return 1.0 - self.entropy / math.log(k) if k > 1 else 1.0

    def expected(self) -> float:
        """Probability-weighted mean of numeric values."""
        return sum(int(v) * p for v, p in self.distribution.items())


def _match_value(rest: str, values: list[str]) -> str | None:
    """The value a candidate token's text (after the shared prefix) starts, if exactly one."""
    norm = rest.strip()
    if not norm:
        return None
    hits = []
    for v in values:
        lv, ln = v.lower(), norm.lower()
        if lv.startswith(ln) or (ln.startswith(lv) and not ln[len(lv):len(lv) + 1].isalnum()):
            hits.append(v)
    return hits[0] if len(hits) == 1 else None


def read_logprobs(
    rubric: Rubric, tokens: list[TokenLogprob], prefill: str | None = None
) -> tuple[dict[str, VerdictReading], str | None]:
    """Distributions over each answer key's values, read at the token where the value starts.

    Args:
        rubric: the rubric (its keys and their values).
        tokens: the generated tokens with their top-k alternatives.
        prefill: the answer prefix the tokens continue, if any. A backend that restarts the
            answer instead of continuing it is read without the prefix.

    Returns:
        ``(readings, error)``: one reading per key, or an error naming the first key that cannot be
        read (not generated, or none of its values among the top-k alternatives).
    """
    readings, error = _read(rubric, tokens, prefill or "")
    if error is not None and prefill:
        alone, alone_error = _read(rubric, tokens, "")
        if alone_error is None:
            return alone, None
    return readings, error


def _read(rubric: Rubric, tokens: list[TokenLogprob], base: str) -> tuple[dict[str, VerdictReading], str | None]:
    pieces = [t.token for t in tokens]
    text = base + "".join(pieces)
    starts = _value_starts(text)
    bounds = []
    pos = len(base)
    for piece in pieces:
        bounds.append((pos, pos + len(piece)))
        pos += len(piece)
    readings: dict[str, VerdictReading] = {}
    for key, rendered in _verdict_values(rubric):
        if key not in starts:
            return {}, f"no value for {key!r} among the generated tokens"
        quoted = rendered[0].startswith('"')
        sig = starts[key] + (1 if quoted else 0)
        idx = next((i for i, (a, b) in enumerate(bounds) if a <= sig < b), None)
        if idx is None:
            return {}, f"the value of {key!r} was not generated"
        prefix = text[bounds[idx][0] : sig]
        values = [v.strip('"') for v in rendered]
        probs: dict[str, float] = {}
        for cand, lp in tokens[idx].top.items():
            if not cand.startswith(prefix) and prefix.strip():
                continue
            rest = cand[len(prefix) :] if cand.startswith(prefix) else cand
            if quoted and '"' in rest:
                rest = rest.split('"')[0]
            v = _match_value(rest, values)
            if v is not None and lp > -math.inf:
                probs[v] = probs.get(v, 0.0) + math.exp(lp)
        mass = sum(probs.values())
        if mass <= 0.0:
            return {}, f"no value of {key!r} among the top-{len(tokens[idx].top)} logprobs"
        dist = {v: probs.get(v, 0.0) / mass for v in values}
        ranked = sorted(dist.values(), reverse=True)
        entropy = -sum(p * math.log(p) for p in dist.values() if p > 0)
        readings[key] = VerdictReading(
            distribution=dist,
            mass=min(mass, 1.0),
            entropy=entropy,
            margin=ranked[0] - (ranked[1] if len(ranked) > 1 else 0.0),
        )
    return readings, None


# ----------------------------------------------------------------------------------------------
# Requests and judgments


def request_key(
    rubric: Rubric, judge_id: str, sampling: SamplingParams, p_hash: str, order: str | None = None
) -> str:
    """Content address of a request: the same key means the same judgment.

    A pairwise request's order is part of it: a pair shown as (A, B) and its mirror image (another
    item with the two responses swapped) shown as (B, A) give the same prompt, but their verdicts
    mean opposite things in their items' terms.
    """
    parts: list[Any] = [rubric.content_hash, judge_id, sampling.model_dump(mode="json"), p_hash]
    if order is not None:
        parts.append(order)
    return stable_hash(parts)


def item_fits(rubric: Rubric, item: Item) -> str | None:
    """Why ``item`` cannot be judged by ``rubric``, or None."""
    if rubric.mode == "pairwise":
        missing = [f for f in ("response_a", "response_b") if getattr(item, f) is None]
    elif rubric.mode == "reference":
        missing = [f for f in ("response", "reference") if getattr(item, f) is None]
    else:
        missing = [f for f in ("response",) if getattr(item, f) is None]
    if missing:
        return f"rubric {rubric.id!r} ({rubric.mode}) needs field(s) {missing}"
    return None


def sampling_for(rubric: Rubric, cfg: JobConfig, plan: ScorePlan | None = None) -> SamplingParams:
    """Decoding parameters of a rubric's requests: the job's settings plus the verdict constraint.

    The json method (and logprob with a rationale) constrains the answer to the rubric's JSON
    schema; logprob without rationale constrains the continuation of its prefill to the choices.
    """
    plan = plan or score_plan(rubric, cfg)
    s = cfg.sampling
    return SamplingParams(
        temperature=s.temperature,
        top_p=s.top_p,
        max_tokens=plan.max_tokens,
        seed=s.seed,
        logprobs=plan.logprobs,
        json_schema=None if plan.choices is not None else output_schema(rubric),
        choices=list(plan.choices) if plan.choices is not None else None,
    )


def order_for(item_id: str, seed: int) -> Literal["AB", "BA"]:
    """The order a single-order pairwise job shows an item in: seeded, stable, recorded."""
    return "AB" if int(stable_hash(["pair-order", seed, item_id])[:8], 16) % 2 == 0 else "BA"


def build_requests(rubric: Rubric, item: Item, cfg: JobConfig, judge_id: str) -> list[JudgeRequest]:
    """The requests that judge ``item`` by ``rubric`` (two for pairwise in both orders)."""
    plan = score_plan(rubric, cfg)
    sampling = sampling_for(rubric, cfg, plan)
    ref = RubricRef(id=rubric.id, version=rubric.version, hash=rubric.content_hash)
    orders: list[Any] = [None]
    if rubric.mode == "pairwise":
        if cfg.pairwise_orders == "both":
            orders = ["AB", "BA"]
        elif cfg.pairwise_orders == "random":
            orders = [order_for(item.id, cfg.sampling.seed)]
        else:
            orders = ["AB"]
    out = []
    for order in orders:
        messages = render_messages(rubric, item, order, sanitize=cfg.scoring.sanitize, prefill=plan.prefill)
        ph = prompt_hash(messages)
        out.append(
            JudgeRequest(
                key=request_key(rubric, judge_id, sampling, ph, order),
                item_id=item.id,
                rubric=ref,
                kind=rubric.mode,
                order=order,
                messages=messages,
                prompt_hash=ph,
                sampling=sampling,
            )
        )
    return out


_SWAP = {"A": "B", "B": "A", "tie": "tie"}


def _in_item_terms(label: str, order: str | None) -> str:
    """A label as shown in ``order``, as the item's label (explicit swap, never arithmetic)."""
    return _SWAP[label] if order == "BA" else label


def _closed(text: str) -> str:
    """``text`` with an unterminated string and object closed (a prefilled answer stops early)."""
    in_str, esc, depth = False, False, 0
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
    return text + ('"' if in_str else "") + "}" * max(depth, 0)


def _parse_with_prefill(rubric: Rubric, prefill: str | None, text: str) -> ParsedVerdict:
    if prefill is None:
        return parse_verdict(rubric, text)
    verdict = parse_verdict(rubric, _closed(prefill + text))
    if not verdict.scored:
        alone = parse_verdict(rubric, text)  # a backend that restarted the answer instead of continuing
        if alone.scored:
            return alone
    return verdict


def _round(x: float) -> float:
    return round(x, 6)


def judgment_from(
    request: JudgeRequest, rubric: Rubric, completion: Completion, info: JudgeInfo, latency_s: float
) -> Judgment:
    """Score one completion. Unparseable output becomes an ``unscored`` judgment.

    A request that asked for logprobs is read by them: the expected score per criterion (and the
    overall score from those), or the probability that each response wins. Unscored when no value
    of a verdict key is among the top-k logprobs. A backend that returns no logprobs leaves the
    written verdict, marked ``extra.logprobs: missing``.
    """
    last = request.messages[-1] if request.messages else None
    prefill = last.content if last is not None and last.role == "assistant" else None
    verdict = _parse_with_prefill(rubric, prefill, completion.text)
    extra: dict[str, Any] = dict(verdict.extra)
    by_logprobs = request.sampling.logprobs is not None
    extra["method"] = "logprob" if by_logprobs else "json"
    if prefill is not None:
        extra["prefill"] = prefill
    error = verdict.error
    scores = verdict.scores
    winner = verdict.winner
    overall: float | None = None
    readings: dict[str, VerdictReading] = {}
    if by_logprobs:
        if not completion.tokens:
            extra["logprobs"] = "missing"
        else:
            readings, lp_error = read_logprobs(rubric, completion.tokens, prefill)
            if lp_error is not None:
                error = lp_error
            elif error is not None:
                # The text did not parse but every verdict token did: take the most likely values.
                error = None
                if rubric.mode == "pairwise":
                    d = readings["winner"].distribution
                    winner = max(d, key=lambda v: d[v])
                else:
                    scores = {k: int(max(r.distribution, key=lambda v: r.distribution[v])) for k, r in readings.items()}
    if error is not None and completion.finish_reason == "length" and request.sampling.choices is None:
        # The likely cause, and its fix. (A prefilled verdict stops at max_tokens by design.)
        error = f"output truncated at max_tokens ({error})"
    scored = error is None
    if scored and readings:
        extra["distribution"] = {k: {v: _round(p) for v, p in r.distribution.items()} for k, r in readings.items()}
        extra["entropy"] = {k: _round(r.entropy) for k, r in readings.items()}
        extra["confidence"] = {k: _round(r.confidence) for k, r in readings.items()}
        extra["margin"] = {k: _round(r.margin) for k, r in readings.items()}
        extra["mass"] = {k: _round(r.mass) for k, r in readings.items()}
        if rubric.mode == "pairwise":
            shown = readings["winner"].distribution
            item_probs = {_in_item_terms(v, request.order): p for v, p in shown.items()}
            extra["p_a"] = _round(item_probs.get("A", 0.0) + 0.5 * item_probs.get("tie", 0.0))
            extra["probs"] = {v: _round(p) for v, p in item_probs.items()}
        else:
            expected = {k: r.expected() for k, r in readings.items()}
            extra["expected"] = {k: _round(v) for k, v in expected.items()}
            overall = rubric.overall(expected)  # type: ignore[arg-type]
    if scored and overall is None and scores:
        overall = rubric.overall(scores)
    if winner in ("A", "B") and request.order == "BA":
        winner = _in_item_terms(winner, "BA")  # positions were swapped; report in item terms
    if scored and rubric.mode == "pairwise" and "p_a" not in extra and winner is not None:
        extra["p_a"] = {"A": 1.0, "B": 0.0, "tie": 0.5}[winner]
        extra["p_source"] = "verdict"
    return Judgment(
        key=request.key,
        item_id=request.item_id,
        rubric=request.rubric,
        judge=info,
        sampling=request.sampling,
        prompt_hash=request.prompt_hash,
        kind=request.kind,
        order=request.order,
        status="scored" if scored else "unscored",
        scores=scores if scored else None,
        overall=_round(overall) if scored and overall is not None else None,
        winner=winner if scored else None,  # type: ignore[arg-type]
        rationale=verdict.rationale,
        raw_output=completion.text,
        error=error,
        extra=extra,
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
        latency_s=round(latency_s, 6),
    )
