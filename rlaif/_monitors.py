"""Per-round drift, collapse and reward-hacking monitors of the RLAIF loop.

Every round, the policy answers a fixed set of evaluation prompts; :func:`measure_round` turns
those outputs, round 0's outputs on the same prompts and human-written references into one typed
:class:`RoundMonitors` record (the measures are defined in :mod:`rlaif._monitor_metrics`):

- diversity: distinct-1/2/3, self-BLEU, compression ratio;
- length: mean length, its ratio to round 0, KS statistic and Wasserstein distance to round 0;
- the tail: coverage of the references' rare n-grams;
- degeneration: repetition rate, refusal rate;
- KL to the reference policy (given, computed from per-token log-probabilities, or read from TRL's
  log history);
- the share of synthetic rows in the round's training mix;
- judge-score inflation: the judge's mean rising against round 0 or the previous round while the
  canary agreement and the human audit's quality estimate do not.

Records are appended to a JSONL file (:func:`append_round_monitors`); a rerun that measures a
round again appends it again and :func:`read_round_monitors` keeps the last record of each round.
:mod:`rlaif._alarms` turns a record into alarms.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from judge.core._errors import ConfigError
from rlaif import _monitor_metrics as m

__all__ = [
    "MonitorSettings",
    "RoundMonitors",
    "append_jsonl",
    "append_round_monitors",
    "measure_round",
    "read_jsonl",
    "read_round_monitors",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MonitorSettings(_Strict):
    """How the text measures were taken (recorded with every round, so rounds compare like with like)."""

    tail_n: int = Field(default=1, ge=1, le=4, description="n of the reference n-grams whose tail is covered.")
    tail_max_count: int = Field(default=1, ge=1, description="A reference n-gram is rare at most this many times.")
    repeat_min_tokens: int = Field(default=6, ge=2, description="Tokens a back-to-back repeated span must cover to be a loop.")
    repeat_max_period: int = Field(default=16, ge=1, description="Longest repeated span looked for (tokens).")
    self_bleu_max: int | None = Field(default=100, ge=2, description="Outputs scored for self-BLEU at most (seeded draw).")
    seed: int = Field(default=0, description="Seed of the self-BLEU draw.")
    refusal_phrases: list[str] = Field(
        default_factory=lambda: list(m.REFUSAL_PHRASES), description="Phrases that mark a refusal (lowercase)."
    )
    inflation_tolerance: float = Field(
        default=0.01, ge=0.0, le=1.0, description="A change within this counts as flat for judge inflation."
    )


class RoundMonitors(_Strict):
    """Every monitor of one round. None: not measurable from the inputs given."""

    schema_version: int = Field(default=1, description="Record format version.")
    round: int = Field(ge=0, description="The loop round (0: the starting policy).")
    n_outputs: int = Field(ge=0, description="Policy outputs measured (one per evaluation prompt and sample).")
    n_references: int = Field(ge=0, description="Human-written references compared with.")
    n_round0: int | None = Field(default=None, description="Round-0 outputs compared with.")
    distinct_1: float = Field(description="Unique / total unigrams over all outputs.")
    distinct_2: float = Field(description="Unique / total bigrams over all outputs.")
    distinct_3: float = Field(description="Unique / total trigrams over all outputs.")
    self_bleu: float | None = Field(description="Mean BLEU (0..1) of each output against the others: higher is less diverse.")
    compression_ratio: float | None = Field(description="Bytes / gzip bytes of the outputs: higher is more repetitive.")
    mean_length: float = Field(description="Mean tokens per output.")
    mean_length_ratio: float | None = Field(default=None, description="mean_length / round 0's mean length.")
    length_ks: float | None = Field(default=None, description="KS statistic of the token lengths against round 0's.")
    length_wasserstein: float | None = Field(default=None, description="Wasserstein-1 distance (tokens) to round 0's lengths.")
    tail_coverage: float | None = Field(description="Share of the references' rare n-grams the outputs contain.")
    n_rare_ngrams: int = Field(ge=0, description="Rare reference n-grams counted by tail_coverage.")
    repetition_rate: float = Field(description="Share of outputs with a repetition loop or a repeated line.")
    refusal_rate: float = Field(description="Share of outputs containing a refusal phrase.")
    kl: float | None = Field(default=None, description="KL to the reference policy (see kl_source for its unit).")
    kl_source: str | None = Field(default=None, description="given, logprobs:k1|k3 (mean sequence KL), or trl:<log key>.")
    synthetic_share: float | None = Field(default=None, description="Share of synthetic rows in the round's training mix.")
    judge_mean: float | None = Field(default=None, description="The judge's mean score of the policy's outputs (0..1).")
    canary_agreement: float | None = Field(default=None, description="The judge's agreement with humans on the canary set.")
    audit_estimate: float | None = Field(default=None, description="The human audit's estimate of the policy's quality (0..1).")
    judge_inflation: float | None = Field(
        default=None, description="Largest over round 0 and the previous round of the judge's gain no human measure confirms."
    )
    judge_inflated: bool = Field(default=False, description="The judge rose while neither human measure did.")
    inflation_baseline: Literal["round0", "previous"] | None = Field(
        default=None, description="Which round judge_inflation was measured against."
    )
    settings: MonitorSettings = Field(default_factory=MonitorSettings, description="How the measures were taken.")
    created_at: str = Field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"), description="When (UTC)."
    )


def _unit(name: str, value: float | None) -> float | None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must be in [0, 1], got {value}")
    return value


def _kl(kl: float | None, policy_logprobs: Any, reference_logprobs: Any, logprob_mask: Any, kl_estimator: str,
        trl_log_history: Sequence[dict[str, Any]] | None) -> tuple[float | None, str | None]:
    given = [kl is not None, policy_logprobs is not None or reference_logprobs is not None, trl_log_history is not None]
    if sum(given) > 1:
        raise ConfigError("give the KL one way: kl=, policy_logprobs= with reference_logprobs=, or trl_log_history=")
    if kl is not None:
        return float(kl), "given"
    if given[1]:
        if policy_logprobs is None or reference_logprobs is None:
            raise ConfigError("policy_logprobs and reference_logprobs are needed together")
        return m.sequence_kl(policy_logprobs, reference_logprobs, logprob_mask, kl_estimator), f"logprobs:{kl_estimator}"  # type: ignore[arg-type]
    if trl_log_history is not None:
        found = m.kl_from_log_history(trl_log_history)
        return (found[0], f"trl:{found[1]}") if found else (None, None)
    return None, None


def _history(previous: RoundMonitors | Sequence[RoundMonitors] | None) -> list[RoundMonitors]:
    if previous is None:
        return []
    if isinstance(previous, RoundMonitors):
        return [previous]
    return sorted(previous, key=lambda r: r.round)


def _inflation(judge_mean: float | None, canary: float | None, audit: float | None, history: list[RoundMonitors],
               tolerance: float) -> tuple[float | None, bool, str | None]:
    """(largest inflation, flagged against either baseline, the baseline of the largest)."""
    if judge_mean is None or not history:
        return None, False, None
    bases = [("round0", r) for r in history if r.round == 0][:1] + [("previous", history[-1])]
    found: list[tuple[float, bool, str]] = []
    for name, base in bases:
        if base.judge_mean is None:
            continue
        c = (base.canary_agreement, canary) if base.canary_agreement is not None and canary is not None else None
        a = (base.audit_estimate, audit) if base.audit_estimate is not None and audit is not None else None
        value, flagged = m.judge_inflation((base.judge_mean, judge_mean), c, a, tolerance=tolerance)
        found.append((value, flagged, name))
    if not found:
        return None, False, None
    value, _, name = max(found, key=lambda f: f[0])
    return value, any(f[1] for f in found), name


def measure_round(
    outputs: Sequence[str],
    references: Sequence[str],
    round0_outputs: Sequence[str] | None = None,
    previous: RoundMonitors | Sequence[RoundMonitors] | None = None,
    *,
    round: int | None = None,
    kl: float | None = None,
    policy_logprobs: Any = None,
    reference_logprobs: Any = None,
    logprob_mask: Any = None,
    kl_estimator: Literal["k1", "k3"] = "k1",
    trl_log_history: Sequence[dict[str, Any]] | None = None,
    synthetic_share: float | None = None,
    judge_mean: float | None = None,
    canary_agreement: float | None = None,
    audit_estimate: float | None = None,
    settings: MonitorSettings | None = None,
) -> RoundMonitors:
    """Measure one round's policy outputs on the evaluation prompts.

    Args:
        outputs: the policy's outputs this round.
        references: human-written references for the same prompts (for the tail coverage).
        round0_outputs: round 0's outputs on the same prompts (for the length shift); the length
            measures are None without them.
        previous: earlier rounds' records (or the previous one): round 0's and the last one's judge
            mean, canary agreement and audit estimate are the baselines of judge inflation.
        round: this round's number; default the previous round's + 1, or 0 without history.
        kl: a KL to the reference policy measured elsewhere; or instead ``policy_logprobs`` and
            ``reference_logprobs`` (per-token log-probabilities of the outputs, see
            :func:`~rlaif._monitor_metrics.sequence_kl`); or ``trl_log_history`` (a TRL trainer's
            ``state.log_history``, its last KL entry is taken).
        synthetic_share: share of synthetic rows in the training mix (``MixReport.synthetic_share``).
        judge_mean: the judge's mean score (0..1) of this round's outputs.
        canary_agreement: the judge's agreement on the canary set this round.
        audit_estimate: the human audit's quality estimate (0..1) of this round's outputs.
        settings: how the text measures are taken.
    """
    s = settings or MonitorSettings()
    history = _history(previous)
    if round is None:
        round = history[-1].round + 1 if history else 0
    for name, value in (("synthetic_share", synthetic_share), ("judge_mean", judge_mean),
                        ("canary_agreement", canary_agreement), ("audit_estimate", audit_estimate)):
        _unit(name, value)
    outputs = list(outputs)
    lengths = [len(m.tokens(t)) for t in outputs]
    mean_len = sum(lengths) / len(lengths) if lengths else 0.0
    ratio = ks = w = None
    if round0_outputs is not None and outputs and round0_outputs:
        base = [len(m.tokens(t)) for t in round0_outputs]
        base_mean = sum(base) / len(base)
        ratio = mean_len / base_mean if base_mean else None
        ks, w = m.ks_statistic(lengths, base), m.wasserstein(lengths, base)
    coverage, n_rare = m.tail_coverage(outputs, references, n=s.tail_n, max_count=s.tail_max_count)
    kl_value, kl_source = _kl(kl, policy_logprobs, reference_logprobs, logprob_mask, kl_estimator, trl_log_history)
    inflation, inflated, baseline = _inflation(judge_mean, canary_agreement, audit_estimate, history, s.inflation_tolerance)
    return RoundMonitors(
        round=round,
        n_outputs=len(outputs),
        n_references=len(references),
        n_round0=len(round0_outputs) if round0_outputs is not None else None,
        distinct_1=m.distinct_n(outputs, 1),
        distinct_2=m.distinct_n(outputs, 2),
        distinct_3=m.distinct_n(outputs, 3),
        self_bleu=m.self_bleu(outputs, max_hypotheses=s.self_bleu_max, seed=s.seed),
        compression_ratio=m.compression_ratio(outputs),
        mean_length=mean_len,
        mean_length_ratio=ratio,
        length_ks=ks,
        length_wasserstein=w,
        tail_coverage=coverage,
        n_rare_ngrams=n_rare,
        repetition_rate=m.repetition_rate(outputs, min_tokens=s.repeat_min_tokens, max_period=s.repeat_max_period),
        refusal_rate=m.refusal_rate(outputs, s.refusal_phrases),
        kl=kl_value,
        kl_source=kl_source,
        synthetic_share=synthetic_share,
        judge_mean=judge_mean,
        canary_agreement=canary_agreement,
        audit_estimate=audit_estimate,
        judge_inflation=inflation,
        judge_inflated=inflated,
        inflation_baseline=baseline,  # type: ignore[arg-type]
        settings=s,
    )


# ----------------------------------------------------------------------------------------------
# JSONL files: appended line by line and fsynced; a torn last line (a crash mid-write) is cut off


def append_jsonl(path: str | Path, record: BaseModel) -> None:
    """Append one record as a JSON line and fsync it; a torn last line left by a crash is cut off first."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("ab+") as fh:
        size = fh.seek(0, os.SEEK_END)
        lead = b""
        if size:
            fh.seek(max(0, size - 1))
            if fh.read(1) != b"\n":
                fh.seek(0)
                data = fh.read()
                cut = data.rfind(b"\n") + 1
                if _parses(data[cut:]):  # a complete record whose newline is missing (an edited file)
                    lead = b"\n"
                else:
                    fh.truncate(cut)
        fh.seek(0, os.SEEK_END)
        fh.write(lead + (record.model_dump_json() + "\n").encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())


def _parses(line: bytes) -> bool:
    try:
        json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return True


def read_jsonl(path: str | Path, model: type[BaseModel]) -> list[Any]:
    """Every record of a JSONL file (none when it does not exist); a torn last line (not JSON) is skipped.

    Raises:
        ConfigError: a complete line is not a valid record (naming the file, line and field).
    """
    p = Path(path)
    if not p.exists():
        return []
    raw = p.read_bytes()
    lines = raw.split(b"\n")
    torn = not raw.endswith(b"\n")
    out = []
    for i, line in enumerate(lines, 1):
        if not line.strip() or (torn and i == len(lines) and not _parses(line)):
            continue
        try:
            out.append(model.model_validate(json.loads(line)))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{p}:{i}: not JSON ({exc})") from None
        except ValidationError as exc:
            e = exc.errors(include_url=False)[0]
            field = ".".join(str(x) for x in e["loc"]) or "(record)"
            raise ConfigError(f"{p}:{i}: {field}: {e['msg']} (given: {e.get('input')!r})") from None
    return out


def append_round_monitors(path: str | Path, record: RoundMonitors) -> None:
    """Append a round's monitors to the monitors file."""
    append_jsonl(path, record)


def read_round_monitors(path: str | Path) -> list[RoundMonitors]:
    """The monitors file's records, the last of each round, ordered by round."""
    last: dict[int, RoundMonitors] = {}
    for r in read_jsonl(path, RoundMonitors):
        last[r.round] = r
    return [last[k] for k in sorted(last)]
