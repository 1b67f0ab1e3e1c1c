"""The dataset card (README.md) of a preference dataset: what it was built from, and every count."""

from __future__ import annotations

import json
from typing import Any

from rlaif._prefs_records import EXCLUSIONS, PrefsBuild

__all__ = ["dataset_card"]

_REASONS = {
    "unscored": "an order (or the score) could not be read",
    "single_order": "judged in one order only: swap consistency cannot be checked",
    "inconsistent": "the two orders disagree",
    "tie": "the judge found no winner (or equal scores)",
    "no_probability": "no P(A wins) recorded for an order",
    "below_margin": "|P(A wins) - 0.5| below min_margin",
    "single_candidate": "a prompt with one scored response",
    "below_score_margin": "score difference below min_score_margin",
    "missing_item": "the item is not in the dataset",
    "length_ratio": "chosen much longer than rejected (length_mode drop)",
    "near_duplicate": "chosen and rejected are (nearly) the same text",
    "duplicate_pair": "the same pair seen before",
    "quarantined": "the sanitiser flagged the chosen text as steering the judge",
}


def dataset_card(report: PrefsBuild, inp: Any) -> str:
    """A Markdown card with YAML front matter that ``datasets`` and the Hub read."""
    r = report.rubric
    lines = [
        "---",
        "configs:",
        "- config_name: default",
        "  data_files:",
        "  - {split: train, path: train.parquet}",
    ]
    if report.test:
        lines.append("  - {split: test, path: test.parquet}")
    lines += [
        "tags: [preference, rlaif, synthetic-labels, trl]",
        "---",
        "",
        "# Preference pairs judged by judgeloop",
        "",
        "Rows are in TRL's conversational format: `prompt` (one user message), `chosen` and `rejected`",
        "(one assistant message each); `kto/` holds the same pairs as unpaired rows (`prompt`,",
        "`completion`, `label`). The preferences are a model judge's, not people's. Provenance columns",
        "name each pair's judgments, items, rubric, judge fingerprint, probabilities and audit status;",
        "`rlaif.walk_back(row)` returns the judgments and items behind a row.",
        "",
        "## Built from",
        "",
        f"- run: `{report.run_dir}` (judgments `{inp.judgments_path.name}`)",
        f"- dataset: `{report.data}`",
        f"- rubric: `{r.id}` version {r.version}, hash `{r.hash}`" if r else "- rubric: n/a",
        "- judge: " + ", ".join(f"`{m}`" for m in sorted({j.judge.model for j in inp.judgments}))
        + "; fingerprint(s) " + ", ".join(f"`{f}`" for f in report.judges),
        "- audit status of the pairs: " + ", ".join(f"{k} {v}" for k, v in sorted(report.audit.items())),
        f"- seed of the held-out split: {report.config.get('seed')}",
        f"- build id: `{report.build_id}`",
        "",
        "## Counts",
        "",
        f"Candidate pairs {report.candidates}; kept {report.pairs} (train {report.train}, test {report.test});",
        f"KTO rows train {report.kto_train}, test {report.kto_test}; down-weighted for length {report.length_weighted}.",
        "",
        "| excluded because | pairs |",
        "|---|---|",
    ]
    lines += [f"| {reason}: {_REASONS[reason]} | {report.excluded.get(reason, 0)} |" for reason in EXCLUSIONS]
    if report.audit_samples:
        lines += ["", f"Quarantined pairs sent to the audit store for review: {len(report.audit_samples)}."]
    lines += ["", "## Config", "", "```json", json.dumps(report.config, indent=2), "```", ""]
    return "\n".join(lines)
