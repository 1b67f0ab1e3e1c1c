"""The end of a job, in bounded memory: summary statistics, pair verdicts and bias diagnostics.

One pass reads the finished judgments file line by line and fills the summary (counts, mean score
per criterion, verdict counts, logprob-weighted means) and the bias counters. What needs more than
counters goes to a SQLite file beside the output (deleted at the end): each item's lengths and
generator names, read from the dataset once, and where each pairwise judgment sits in the output
(byte offset), so that the two orders of a pair, wherever the job wrote them, are grouped by SQLite
rather than in memory. A second pass walks the pairs in the order they first appear, combines each
into a :class:`~judge.analysis._verdicts.PairVerdict`, streams it to the verdicts file (temp file + rename)
and counts it in the bias diagnostics. Memory does not grow with the size of the job.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from judge.core._io import RowBuffer, atomic_write
from judge.analysis._bias import BiasStats, iter_item_features
from judge.core._config import JobConfig
from judge.core._records import JudgeInfo, Judgment
from judge.inputs._rubric import Rubric
from judge.analysis._verdicts import combine_orders, pair_key, verdicts_path
from judge.runner._summary import CriterionStat, JobSummary, PairsSummary, RubricSummary

__all__ = ["finish_job"]

_FEATURES = ("len", "len_a", "len_b", "gen", "gen_a", "gen_b")


class _Spool:
    """The temporary SQLite file of the end step: item features and pairwise judgment offsets."""

    def __init__(self, output: Path) -> None:
        self.path = output.with_name(output.name + ".finish.sqlite")
        self._remove()  # left by a killed run: rebuilt from scratch
        self.conn = sqlite3.connect(str(self.path), isolation_level=None)
        # Scratch data, rebuilt on every run: no journal, no fsync.
        self.conn.execute("PRAGMA journal_mode=OFF")
        self.conn.execute("PRAGMA synchronous=OFF")
        self.conn.execute("BEGIN")
        self.conn.execute(
            "CREATE TABLE features (item_id TEXT PRIMARY KEY, len INTEGER, len_a INTEGER, len_b INTEGER, "
            "gen TEXT, gen_a TEXT, gen_b TEXT)"
        )
        self.conn.execute("CREATE TABLE pairs (gkey TEXT, seq INTEGER, ord TEXT, off INTEGER, size INTEGER)")
        self._pairs = RowBuffer(self.conn, "INSERT INTO pairs VALUES (?, ?, ?, ?, ?)")

    def _remove(self) -> None:
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)

    def load_features(self, cfg: JobConfig, rubrics: list[Rubric]) -> None:
        """Each valid item's features, from the dataset (a repeated id keeps its last row)."""
        rows = RowBuffer(self.conn, "INSERT OR REPLACE INTO features VALUES (?, ?, ?, ?, ?, ?, ?)")
        for item_id, f in iter_item_features(cfg, rubrics):
            rows.add((item_id, *(_text(f[k]) if k.startswith("gen") else f[k] for k in _FEATURES)))
        rows.flush()

    def features(self, item_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT len, len_a, len_b, gen, gen_a, gen_b FROM features WHERE item_id = ?", (item_id,)
        ).fetchone()
        return dict(zip(_FEATURES, row)) if row else None

    def add_pair(self, j: Judgment, seq: int, offset: int, size: int) -> None:
        self._pairs.add((pair_key(j), seq, j.order, offset, size))

    def pair_groups(self, output: Path) -> Iterator[list[Judgment]]:
        """Each pair's judgments (AB first), pairs in the order their first judgment appears.

        An order written twice for a pair (a reopened job) counts once: the later line.
        """
        self._pairs.flush()
        self.conn.execute("CREATE INDEX pairs_gkey ON pairs (gkey)")
        cur = self.conn.execute(
            "SELECT p.gkey, p.ord, p.off, p.size FROM pairs p "
            "JOIN (SELECT gkey, MIN(seq) AS first FROM pairs GROUP BY gkey) g ON p.gkey = g.gkey "
            "ORDER BY g.first, p.seq"
        )
        group: dict[str, Judgment] = {}
        current = None
        with output.open("rb") as fh:
            for gkey, order, off, size in cur:
                if gkey != current and group:
                    yield _ordered(group)
                    group = {}
                current = gkey
                fh.seek(off)
                group[order] = Judgment.model_validate_json(fh.read(size))
        if group:
            yield _ordered(group)

    def close(self) -> None:
        self.conn.close()
        self._remove()


def _text(x: Any) -> str | None:
    return None if x is None else str(x)


def _ordered(group: dict[str, Judgment]) -> list[Judgment]:
    return sorted(group.values(), key=lambda j: 0 if j.order == "AB" else 1)


@dataclass
class _RubricTotals:
    mode: str
    scored: int = 0
    unscored: int = 0
    scores: dict[str, list[float]] = field(default_factory=dict)  # criterion -> [sum, n]
    expected: dict[str, list[float]] = field(default_factory=dict)
    winners: Counter = field(default_factory=Counter)

    def add(self, j: Judgment) -> None:
        if j.status == "unscored":
            self.unscored += 1
            return
        self.scored += 1
        for c, v in (j.scores or {}).items():
            _accumulate(self.scores, c, v)
        for c, v in (j.extra.get("expected") or {}).items():
            _accumulate(self.expected, c, float(v))
        if j.winner:
            self.winners[j.winner] += 1

    def entry(self) -> RubricSummary:
        return RubricSummary(
            mode=self.mode,
            scored=self.scored,
            unscored=self.unscored,
            criteria=_means(self.scores),
            winners=dict(self.winners),
            expected=_means(self.expected) if self.expected else None,
        )


def _accumulate(acc: dict[str, list[float]], name: str, value: float) -> None:
    s = acc.setdefault(name, [0.0, 0])
    s[0] += value
    s[1] += 1


def _means(acc: dict[str, list[float]]) -> dict[str, CriterionStat]:
    return {c: CriterionStat(mean=round(s / n, 4), n=int(n)) for c, (s, n) in acc.items()}


def finish_job(cfg: JobConfig, output: Path, rubrics: list[Rubric], summary: JobSummary) -> int:
    """End-of-job step: fill the summary's statistics and write the pair verdicts file.

    Args:
        cfg: the job (its scoring policy, seed and dataset).
        output: the finished judgments file.
        rubrics: the job's rubrics (verdicts and bias diagnostics are computed for these; the
            counts cover every judgment in the file).
        summary: the job's :class:`~judge.runner.JobSummary`: ``judgments``, ``unscored`` and the
            token totals are set over the whole output (and ``judge`` when no request ran), and
            ``rubrics`` gets one entry per rubric with counts, mean score per criterion, verdict
            counts, ``expected`` (logprob-weighted means), ``pairs`` (pairwise) and ``bias``.

    Returns:
        The number of pair verdicts written.
    """
    output = Path(output)
    mine = {r.content_hash for r in rubrics}
    policy = cfg.scoring.pairwise_policy
    totals: dict[str, _RubricTotals] = {}
    judge_names = {cfg.judge.model}
    spool = _Spool(output)
    try:
        spool.load_features(cfg, rubrics)
        bias = BiasStats(spool.conn)
        seq = offset = 0
        last_judge: JudgeInfo | None = None
        summary.judgments = summary.unscored = summary.prompt_tokens = summary.completion_tokens = 0
        with output.open("rb") as fh:
            for line in fh:
                size = len(line)
                if line.strip():
                    j = Judgment.model_validate_json(line)
                    summary.judgments += 1
                    summary.unscored += j.status == "unscored"
                    summary.prompt_tokens += j.prompt_tokens
                    summary.completion_tokens += j.completion_tokens
                    last_judge = j.judge
                    totals.setdefault(j.rubric.id, _RubricTotals(mode=j.kind)).add(j)
                    if j.rubric.hash in mine:
                        judge_names.add(j.judge.model)
                        bias.add_judgment(j, spool.features(j.item_id) if j.kind != "pairwise" else None)
                        if j.kind == "pairwise" and j.order is not None:
                            spool.add_pair(j, seq, offset, size)
                    seq += 1
                offset += size

        pair_counts: dict[str, Counter] = {r.content_hash: Counter() for r in rubrics}

        def verdict_lines() -> Iterator[str]:
            for group in spool.pair_groups(output):
                v = combine_orders(group, policy, cfg.scoring.tie_threshold, cfg.sampling.seed)
                pair_counts[v.rubric.hash][v.winner or "unscored"] += 1
                bias.add_verdict(v, spool.features(v.item_id))
                yield v.model_dump_json() + "\n"

        if any(r.mode == "pairwise" for r in rubrics):
            atomic_write(verdicts_path(output), verdict_lines())

        summary.rubrics = {rid: t.entry() for rid, t in totals.items()}
        for rubric in rubrics:
            entry = summary.rubrics.setdefault(rubric.id, _RubricTotals(mode=rubric.mode).entry())
            if rubric.mode == "pairwise":
                counts = pair_counts[rubric.content_hash]
                entry.pairs = PairsSummary(
                    n=sum(counts.values()),
                    policy=policy,
                    tie_threshold=cfg.scoring.tie_threshold if policy == "average-probability" else None,
                    winners=dict(counts),
                    file=str(verdicts_path(output)),
                )
            entry.bias = bias.diagnostics(rubric, [cfg.judge.model, *sorted(judge_names)])
        if summary.judge is None:
            summary.judge = last_judge  # nothing ran (a rerun): the judge that wrote the output
        return sum(sum(c.values()) for c in pair_counts.values())
    finally:
        spool.close()
