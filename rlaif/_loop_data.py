"""A round's training mix: this round's pairs, earlier rounds' (``accumulate``) and human-written rows.

Shumailov et al. (2024) saw models trained on their own output, with the original data replaced,
collapse within a few generations; Gerstgrasser et al. (2024) showed that accumulating the data of
every generation (and keeping real data) keeps the error bounded. So the default is
``accumulate``, a share of human rows can be mixed in, and every mix records its synthetic share.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from judge.core._errors import DataError
from judge.core._io import atomic_write

__all__ = ["MixReport", "mix_training_rows"]


class MixReport(BaseModel):
    """What one round's training set is made of (written as ``provenance.json`` beside the rows)."""

    model_config = ConfigDict(extra="forbid")

    round: int
    policy: str = Field(description="accumulate or replace.")
    rows: int = Field(description="Rows in the training set.")
    synthetic: int = Field(description="Rows built from the judge's preferences on model output.")
    human: int = Field(description="Human-written rows mixed in.")
    synthetic_share: float = Field(description="synthetic / rows.")
    human_share_asked: float = Field(description="The configured human share.")
    by_round: dict[str, int] = Field(description="Synthetic rows per source round.")
    sources: list[str] = Field(description="Every file the rows came from.")
    human_source: str | None = Field(default=None, description="The human rows' file.")
    seed: int = Field(description="Seed of the draw of human rows.")


def _split_file(prefs_dir: Path, algorithm: str) -> Path:
    base = prefs_dir / "kto" if algorithm == "kto" else prefs_dir
    f = base / "train.jsonl"
    if not f.is_file():
        raise DataError(f"{prefs_dir}: no {f.relative_to(prefs_dir)} (is it a dataset written by `judgeloop prefs build`?)")
    return f


def _jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{n}: invalid JSON: {exc.msg}") from None
    return rows


def _human_rows(path: Path, algorithm: str) -> list[dict[str, Any]]:
    from rlaif._datasets import load_training_rows

    data = load_training_rows(path, algorithm)  # checked row by row: a bad human row names its line
    return data.rows


def mix_training_rows(
    round_no: int,
    prefs_dirs: dict[int, Path],
    out_dir: Path,
    *,
    algorithm: str,
    policy: str,
    human: Any | None = None,
    seed: int = 0,
) -> MixReport:
    """Write ``<out_dir>/train.jsonl`` and ``provenance.json`` for round ``round_no``; idempotent.

    Args:
        round_no: the round trained.
        prefs_dirs: every finished round's preference dataset, by round.
        out_dir: where the mix goes.
        algorithm: dpo (pairs) or kto (unpaired rows).
        policy: ``accumulate`` (rounds <= round_no) or ``replace`` (this round only).
        human: a :class:`~rlaif._loop_config.HumanData`, or None.
        seed: seed of the draw of human rows (recorded).
    """
    rounds = sorted(r for r in prefs_dirs if r <= round_no) if policy == "accumulate" else [round_no]
    synthetic: list[dict[str, Any]] = []
    sources = []
    per_round: Counter[str] = Counter()
    for r in rounds:
        f = _split_file(prefs_dirs[r], algorithm)
        sources.append(str(f))
        for row in _jsonl(f):
            synthetic.append({**row, "origin": "synthetic", "origin_round": r})
            per_round[str(r)] += 1
    human_rows: list[dict[str, Any]] = []
    if human is not None and human.share > 0:
        pool = _human_rows(Path(human.path), algorithm)
        want = int(round(human.share / (1.0 - human.share) * len(synthetic)))
        rng = np.random.default_rng(seed)
        take = sorted(rng.choice(len(pool), size=min(want, len(pool)), replace=False).tolist()) if pool else []
        human_rows = [{**pool[i], "origin": "human", "origin_round": -1} for i in take]
    rows = synthetic + human_rows
    if not rows:
        raise DataError(f"round {round_no}: the training mix is empty")
    report = MixReport(
        round=round_no, policy=policy, rows=len(rows), synthetic=len(synthetic), human=len(human_rows),
        synthetic_share=round(len(synthetic) / len(rows), 6), human_share_asked=human.share if human else 0.0,
        by_round=dict(per_round), sources=sources, human_source=str(human.path) if human else None, seed=seed,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
    atomic_write(out_dir / "train.jsonl", text)
    atomic_write(out_dir / "provenance.json", report.model_dump_json(indent=1) + "\n")
    return report
