"""Typed records of preference building: its config, one preference pair, and the build report.

A :class:`PreferencePair` carries, beside its three texts, everything needed to walk it back to
where it came from: the judgment keys, the item ids, the rubric and judge, both orders'
probabilities, the margin it cleared, the audit status of its judge scope, the run and dataset.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from judge.core._records import RubricRef, stable_hash

__all__ = ["EXCLUSIONS", "PreferencePair", "PrefsBuild", "PrefsConfig", "load_prefs_config"]

#: Every reason a candidate pair is left out, in the order reports list them.
EXCLUSIONS: tuple[str, ...] = (
    "unscored",
    "single_order",
    "inconsistent",
    "tie",
    "no_probability",
    "below_margin",
    "single_candidate",
    "below_score_margin",
    "missing_item",
    "length_ratio",
    "near_duplicate",
    "duplicate_pair",
    "quarantined",
)
AuditStatus = Literal["passed", "overridden", "failed", "unaudited"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AuditGate(_Strict):
    """The gate a pair's judge scope is checked against when an audit store is given."""

    name: str = Field(default="default", description="Gate name (overrides are recorded per name).")
    min_agreement: float = Field(default=0.8, ge=0.0, le=1.0, description="Bar for the agreement lower bound.")
    min_labels: int = Field(default=50, ge=1, description="Before-reveal labels needed at least.")
    alpha: float = Field(default=0.05, gt=0.0, lt=1.0, description="Error level of the bounds.")


class PrefsConfig(_Strict):
    """How preference pairs are built from a judged run (``judgeloop prefs build --config``)."""

    rubric: str | None = Field(
        default=None,
        description="Rubric id (or YAML path) whose judgments are used; required when the run holds several.",
    )
    source: Literal["auto", "pairwise", "pointwise"] = Field(
        default="auto", description="auto: pair verdicts and pointwise scores, whichever the run has."
    )
    min_margin: float = Field(
        default=0.1, ge=0.0, le=0.5, description="Pairwise: |P(A wins) - 0.5| averaged over both orders, at least."
    )
    pointwise_pairs: Literal["best_worst", "all"] = Field(
        default="best_worst", description="Pointwise: best vs worst candidate of a prompt, or every pair above the margin."
    )
    min_score_margin: float = Field(
        default=0.1, ge=0.0, le=1.0, description="Pointwise: overall score (in [0, 1]) of chosen minus rejected, at least."
    )
    max_length_ratio: float | None = Field(
        default=1.5, gt=1.0, description="Chosen characters / rejected characters above this is too long; None: no check."
    )
    length_mode: Literal["drop", "weight"] = Field(
        default="drop", description="drop such a pair, or keep it with weight max_length_ratio / ratio."
    )
    dedup_threshold: float = Field(
        default=0.9, gt=0.0, le=1.0, description="Character 5-gram Jaccard similarity at which two texts are the same."
    )
    keep_quarantined: bool = Field(
        default=False, description="Keep pairs whose chosen text the sanitiser flags (marked quarantined); off by default."
    )
    test_fraction: float = Field(default=0.1, ge=0.0, lt=1.0, description="Share of prompts held out as the test split.")
    seed: int = Field(default=0, description="Seed of the held-out split (by prompt).")
    gate: AuditGate = Field(default_factory=AuditGate, description="Gate settings for the audit status of each pair.")


def load_prefs_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> PrefsConfig:
    """A config from YAML (optional) with flag overrides; errors name the file, line and field."""
    import pydantic

    from judge.core._errors import ConfigError
    from judge.core._yaml import load_model

    base: dict[str, Any] = {}
    if path is not None:
        base = load_model(Path(path), PrefsConfig, ConfigError, "preference config").model_dump(exclude_unset=True)
    base.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return PrefsConfig.model_validate(base)
    except pydantic.ValidationError as exc:  # a flag's value (the file's own errors are located above)
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']} (given: {e.get('input')!r})" for e in exc.errors(include_url=False)
        )
        raise ConfigError(f"preference config: {problems}") from None


class PreferencePair(_Strict):
    """One chosen/rejected pair with its provenance. Texts are untrusted data."""

    schema_version: int = Field(default=1, description="Record format version.")
    pair_id: str = Field(default="", description="Hash of prompt, chosen and rejected; derived when empty.")
    prompt: str = Field(description="The user prompt both responses answer.")
    chosen: str = Field(description="The preferred response.")
    rejected: str = Field(description="The other response.")
    source: Literal["pairwise", "pointwise"] = Field(description="From a pair verdict or from pointwise scores.")
    split: Literal["train", "test"] = Field(default="train", description="Held-out split, assigned by prompt.")
    prompt_id: str = Field(description="What groups responses to one prompt: meta.prompt_id, else the prompt's hash.")
    weight: float = Field(default=1.0, gt=0.0, le=1.0, description="Training weight (below 1: length-balanced).")
    margin: float = Field(description="Pairwise: mean |P(A wins) - 0.5|; pointwise: chosen minus rejected overall.")
    p_a: dict[str, float | None] = Field(
        default_factory=dict, description="Pairwise: per order, P(the item's response A wins)."
    )
    chosen_side: Literal["A", "B"] | None = Field(default=None, description="Pairwise: which of the item's responses won.")
    scores: dict[str, float] = Field(
        default_factory=dict, description="Pointwise: overall score of 'chosen' and 'rejected'."
    )
    length_ratio: float = Field(description="Characters of chosen / characters of rejected.")
    quarantined: bool = Field(default=False, description="The sanitiser would change the chosen text (kept on request).")
    judgment_keys: list[str] = Field(description="The judgments the pair came from.")
    item_ids: list[str] = Field(description="The items the pair came from (one for a pair verdict; chosen, rejected).")
    rubric: RubricRef = Field(description="The rubric the judge applied.")
    judge_model: str = Field(description="The judge model as configured.")
    judge_fingerprint: str = Field(description="Fingerprint of the judge's weights and tokenizer (JudgeInfo.model_hash).")
    audit_scope: str = Field(description="Gate scope of the judgments (fingerprint|rubric hash|prompt version).")
    audit_status: AuditStatus = Field(description="The gate's decision for that scope in the audit store; unaudited without one.")
    run_dir: str = Field(description="The run directory holding the judgments.")
    data: str = Field(description="The dataset the items were read from.")

    @model_validator(mode="after")
    def _derive_id(self) -> "PreferencePair":
        if not self.pair_id:
            self.pair_id = "pp-" + stable_hash([self.prompt, self.chosen, self.rejected])[:20]
        return self

    def trl_row(self) -> dict[str, Any]:
        """TRL's conversational preference row (``prompt`` / ``chosen`` / ``rejected``) with provenance columns."""
        row: dict[str, Any] = {
            "prompt": [{"role": "user", "content": self.prompt}],
            "chosen": [{"role": "assistant", "content": self.chosen}],
            "rejected": [{"role": "assistant", "content": self.rejected}],
        }
        return {**row, **self._provenance()}

    def kto_rows(self) -> list[dict[str, Any]]:
        """Two unpaired rows for KTO: the chosen text desirable, the rejected one not."""
        prov = self._provenance()
        prompt = [{"role": "user", "content": self.prompt}]
        return [
            {"prompt": prompt, "completion": [{"role": "assistant", "content": self.chosen}], "label": True, **prov},
            {"prompt": prompt, "completion": [{"role": "assistant", "content": self.rejected}], "label": False, **prov},
        ]

    def _provenance(self) -> dict[str, Any]:
        # Flat columns of fixed types, so Parquet and datasets hold them without per-row schemas.
        return {
            "pair_id": self.pair_id,
            "source": self.source,
            "split": self.split,
            "prompt_id": self.prompt_id,
            "weight": self.weight,
            "margin": self.margin,
            "p_a_ab": self.p_a.get("AB"),
            "p_a_ba": self.p_a.get("BA"),
            "chosen_side": self.chosen_side,
            "score_chosen": self.scores.get("chosen"),
            "score_rejected": self.scores.get("rejected"),
            "length_ratio": self.length_ratio,
            "quarantined": self.quarantined,
            "judgment_keys": list(self.judgment_keys),
            "item_ids": list(self.item_ids),
            "rubric_id": self.rubric.id,
            "rubric_version": self.rubric.version,
            "rubric_hash": self.rubric.hash,
            "judge_model": self.judge_model,
            "judge_fingerprint": self.judge_fingerprint,
            "audit_scope": self.audit_scope,
            "audit_status": self.audit_status,
            "run_dir": self.run_dir,
            "data": self.data,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "PreferencePair":
        """The pair behind a written row (preference or KTO row of the built dataset)."""
        if "chosen" in row:
            chosen, rejected = row["chosen"][0]["content"], row["rejected"][0]["content"]
        else:
            raise ValueError("a KTO row holds one side of a pair; walk back from the preference rows")
        p_a = {o: row[f"p_a_{o.lower()}"] for o in ("AB", "BA") if row.get(f"p_a_{o.lower()}") is not None}
        scores = {s: row[f"score_{s}"] for s in ("chosen", "rejected") if row.get(f"score_{s}") is not None}
        return cls(
            pair_id=row["pair_id"], prompt=row["prompt"][-1]["content"], chosen=chosen, rejected=rejected,
            source=row["source"], split=row["split"], prompt_id=row["prompt_id"], weight=row["weight"],
            margin=row["margin"], p_a=p_a, chosen_side=row["chosen_side"], scores=scores,
            length_ratio=row["length_ratio"], quarantined=row["quarantined"], judgment_keys=list(row["judgment_keys"]),
            item_ids=list(row["item_ids"]),
            rubric=RubricRef(id=row["rubric_id"], version=row["rubric_version"], hash=row["rubric_hash"]),
            judge_model=row["judge_model"], judge_fingerprint=row["judge_fingerprint"], audit_scope=row["audit_scope"],
            audit_status=row["audit_status"], run_dir=row["run_dir"], data=row["data"],
        )


class PrefsBuild(_Strict):
    """What a build did: counts of every exclusion reason, the splits, and where it wrote."""

    out_dir: str = Field(description="The dataset directory.")
    unchanged: bool = Field(default=False, description="A rerun with the same inputs and config: nothing was written.")
    build_id: str = Field(description="Hash of the rows written and the config: equal builds have equal ids.")
    run_dir: str = Field(description="The run the pairs came from.")
    data: str = Field(description="The dataset the items came from.")
    rubric: RubricRef | None = Field(default=None, description="The rubric whose judgments were used.")
    judges: list[str] = Field(default_factory=list, description="Judge fingerprints of the pairs kept.")
    candidates: int = Field(default=0, description="Candidate pairs considered (before any exclusion).")
    pairs: int = Field(default=0, description="Pairs kept.")
    excluded: dict[str, int] = Field(default_factory=dict, description="Candidate pairs left out, per reason.")
    length_weighted: int = Field(default=0, description="Pairs kept with a weight below 1 (length_mode weight).")
    train: int = Field(default=0, description="Pairs in the train split.")
    test: int = Field(default=0, description="Pairs in the test split.")
    kto_train: int = Field(default=0, description="KTO rows in the train split.")
    kto_test: int = Field(default=0, description="KTO rows in the test split.")
    audit: dict[str, int] = Field(default_factory=dict, description="Pairs kept per audit status.")
    audit_samples: list[str] = Field(
        default_factory=list, description="Sample ids of quarantined pairs sent to the audit store."
    )
    config: dict[str, Any] = Field(default_factory=dict, description="The config used.")

    def table(self) -> str:
        """The summary printed by ``judgeloop prefs build``."""
        head = "unchanged (same inputs and config; nothing written)" if self.unchanged else "written"
        lines = [
            f"preferences  {self.out_dir}  {head}",
            f"  from {self.run_dir} (data {self.data}); rubric "
            + (f"{self.rubric.id} v{self.rubric.version}" if self.rubric else "n/a"),
            f"  candidate pairs {self.candidates}   kept {self.pairs}   "
            f"train {self.train}   test {self.test}   kto rows {self.kto_train} / {self.kto_test}",
            "  excluded:",
        ]
        width = max(len(r) for r in EXCLUSIONS)
        for reason in EXCLUSIONS:
            lines.append(f"    {reason.ljust(width)}  {self.excluded.get(reason, 0):6d}")
        if self.length_weighted:
            lines.append(f"  down-weighted for length  {self.length_weighted}")
        lines.append("  audit status: " + (", ".join(f"{k} {v}" for k, v in sorted(self.audit.items())) or "n/a"))
        if self.audit_samples:
            lines.append(f"  quarantined pairs sent to the audit store: {len(self.audit_samples)}")
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2) + "\n"
