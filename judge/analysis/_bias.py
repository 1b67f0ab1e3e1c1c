"""Bias diagnostics of a judge, reported with every job.

- **Position bias** (pairwise): how often the response shown first wins among decisive per-order
  verdicts (0.5 is unbiased), the mean probability the judge gives the first-shown response, and
  the swap-inconsistency rate: the share of pairs whose verdict changes when the order is swapped.
- **Length bias**: how often the longer response wins a decided pair (pairwise), and the Spearman
  correlation between score and response length (pointwise). Read them next to the human rate on
  the same data (``judgeloop eval``): a longer answer is often the better one.
- **Self-preference**: when an item's ``meta`` names the model that generated a response
  (``generator`` for pointwise items, ``generator_a`` / ``generator_b`` for pairs) and that model
  is the judge, how the judge treats its own responses: their win rate against another model's,
  or their mean score against other responses' mean.

Lengths are in characters of the response text.

:class:`BiasStats` accumulates the diagnostics judgment by judgment and verdict by verdict in
bounded memory: counters for position bias, and one small row per score or pair verdict in SQLite
(in memory, or the file a job's end step works in) for the statistics that need every value, such
as a rank correlation. The list functions below feed it from lists.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

from judge.core._io import RowBuffer
from judge.core._records import Judgment
from judge.inputs._rubric import Rubric

if TYPE_CHECKING:
    from judge.core._config import JobConfig
    from judge.analysis._verdicts import PairVerdict

__all__ = [
    "BiasStats",
    "diagnostics",
    "features_of",
    "item_features",
    "iter_item_features",
    "length_bias",
    "position_bias",
    "self_preference",
]


def _name(x: Any) -> str:
    return Path(str(x).rstrip("/")).name.lower()


def iter_item_features(cfg: "JobConfig", rubrics: list[Rubric]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(item id, features)`` of each valid item of the job, streamed (reads the dataset again).

    Invalid rows are skipped silently: the job that judged the dataset has reported them.
    """
    from judge.inputs._data import iter_items
    from judge.scoring._requests import item_fits

    def check(item: Any) -> str | None:
        return next((p for p in (item_fits(r, item) for r in rubrics) if p), None)

    for item in iter_items(cfg.data, check, cfg.limit, columns=cfg.columns, scratch_dir=Path(cfg.output).parent):
        yield item.id, features_of(item.response, item.response_a, item.response_b, item.meta)


def item_features(cfg: "JobConfig", rubrics: list[Rubric]) -> dict[str, dict[str, Any]]:
    """Lengths and generator names of the job's items, by item id (a repeated id keeps its last row)."""
    return dict(iter_item_features(cfg, rubrics))


def features_of(response: str | None, a: str | None, b: str | None, meta: dict[str, Any]) -> dict[str, Any]:
    """The features the diagnostics use, for one item."""
    return {
        "len": len(response) if response is not None else None,
        "len_a": len(a) if a is not None else None,
        "len_b": len(b) if b is not None else None,
        "gen": meta.get("generator"),
        "gen_a": meta.get("generator_a"),
        "gen_b": meta.get("generator_b"),
    }


def _rate(hits: int, n: int) -> float | None:
    return round(hits / n, 4) if n else None


@dataclass
class _Position:
    decisive: int = 0
    first_won: int = 0
    p_first_sum: float = 0.0
    p_first_n: int = 0
    pairs_both: int = 0
    pairs_inconsistent: int = 0

    def __iadd__(self, other: "_Position") -> "_Position":
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    def result(self) -> dict[str, Any]:
        return {
            "n_verdicts": self.decisive,
            "first_shown_win_rate": _rate(self.first_won, self.decisive),
            "mean_p_first_shown": round(self.p_first_sum / self.p_first_n, 4) if self.p_first_n else None,
            "n_pairs_both_orders": self.pairs_both,
            "swap_inconsistency_rate": _rate(self.pairs_inconsistent, self.pairs_both),
        }


def _gen(x: Any) -> str | None:
    return _name(x) if x is not None else None


class BiasStats:
    """Bias diagnostics accumulated one judgment and one pair verdict at a time.

    Args:
        conn: a SQLite connection to keep the per-score and per-pair rows in (a job's end step
            passes one on a temporary file); default: a private in-memory database.
    """

    def __init__(self, conn: sqlite3.Connection | None = None) -> None:
        self._conn = conn if conn is not None else sqlite3.connect(":memory:")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS bias_points (rubric TEXT, overall REAL, len INTEGER, gen TEXT)"
        )
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS bias_pairs "
            "(rubric TEXT, winner TEXT, len_a INTEGER, len_b INTEGER, gen_a TEXT, gen_b TEXT)"
        )
        self._position: dict[str, _Position] = {}
        self._points = RowBuffer(self._conn, "INSERT INTO bias_points VALUES (?, ?, ?, ?)")
        self._pairs = RowBuffer(self._conn, "INSERT INTO bias_pairs VALUES (?, ?, ?, ?, ?, ?)")

    def _pos(self, rubric_hash: str) -> _Position:
        return self._position.setdefault(rubric_hash, _Position())

    def add_judgment(self, j: Judgment, features: Mapping[str, Any] | None) -> None:
        """Count one judgment; ``features`` are its item's (:func:`features_of`), None if unknown."""
        if j.kind == "pairwise":
            if j.status != "scored" or j.order is None:
                return
            pos = self._pos(j.rubric.hash)
            shown_first = "A" if j.order == "AB" else "B"  # in the item's terms
            if j.winner in ("A", "B"):
                pos.decisive += 1
                pos.first_won += j.winner == shown_first
            p = j.extra.get("p_a")
            if isinstance(p, (int, float)) and j.extra.get("p_source") != "verdict":
                # p_a is P(the item's A wins); the first shown is the item's B in order BA.
                pos.p_first_sum += float(p) if j.order == "AB" else 1.0 - float(p)
                pos.p_first_n += 1
            return
        if j.status != "scored" or j.overall is None or features is None:
            return
        self._points.add((j.rubric.hash, float(j.overall), features.get("len"), _gen(features.get("gen"))))

    def add_verdict(self, v: "PairVerdict", features: Mapping[str, Any] | None) -> None:
        """Count one pair verdict; ``features`` are its item's, None if unknown."""
        if v.consistent is not None:
            pos = self._pos(v.rubric.hash)
            pos.pairs_both += 1
            pos.pairs_inconsistent += not v.consistent
        if features is None or v.winner not in ("A", "B", "tie"):
            return
        f = features
        self._pairs.add(
            (v.rubric.hash, v.winner, f.get("len_a"), f.get("len_b"), _gen(f.get("gen_a")), _gen(f.get("gen_b")))
        )

    def _flush(self) -> None:
        self._points.flush()
        self._pairs.flush()

    # ------------------------------------------------------------------------------------------
    # Results

    def position(self, rubric_hash: str) -> dict[str, Any]:
        """First-shown win rate, mean P(first shown wins) and swap-inconsistency rate."""
        return self._pos(rubric_hash).result()

    def length(self, rubric: Rubric) -> dict[str, Any]:
        """Longer-response win rate (pairwise) or Spearman(score, length) (pointwise)."""
        self._flush()
        if rubric.mode == "pairwise":
            n, longer = self._conn.execute(
                "SELECT COUNT(*), COALESCE(SUM((winner = 'A') = (len_a > len_b)), 0) FROM bias_pairs "
                "WHERE rubric = ? AND winner IN ('A', 'B') AND len_a IS NOT NULL AND len_b IS NOT NULL "
                "AND len_a != len_b",
                (rubric.content_hash,),
            ).fetchone()
            return {"n_pairs": int(n), "longer_win_rate": _rate(int(longer), int(n))}
        n, rho = self._spearman(rubric.content_hash)
        return {"n_scores": n, "score_length_spearman": None if math.isnan(rho) else round(rho, 4)}

    def _spearman(self, rubric_hash: str) -> tuple[int, float]:
        """Spearman's rho of (overall, len): Pearson correlation of average ranks, computed in SQL."""
        where = "FROM bias_points WHERE rubric = :h AND len IS NOT NULL"
        (n,) = self._conn.execute(f"SELECT COUNT(*) {where}", {"h": rubric_hash}).fetchone()
        if n < 2:
            return int(n), math.nan
        # A value's average rank is its lowest rank plus half the number of its ties; the mean of
        # the average ranks 1..n is exactly (n + 1) / 2.
        sxy, sxx, syy = self._conn.execute(
            f"""
            WITH r AS (
                SELECT RANK() OVER (ORDER BY overall) + (COUNT(*) OVER (PARTITION BY overall) - 1) / 2.0 AS rx,
                       RANK() OVER (ORDER BY len) + (COUNT(*) OVER (PARTITION BY len) - 1) / 2.0 AS ry
                {where}
            )
            SELECT SUM((rx - :m) * (ry - :m)), SUM((rx - :m) * (rx - :m)), SUM((ry - :m) * (ry - :m)) FROM r
            """,
            {"h": rubric_hash, "m": (n + 1) / 2.0},
        ).fetchone()
        den = math.sqrt(sxx * syy)
        return int(n), (sxy / den if den > 0 else math.nan)

    def self_preference(self, rubric: Rubric, judge_names: Iterable[str]) -> dict[str, Any]:
        """How the judge treats responses its own model generated (needs generator names in ``meta``)."""
        self._flush()
        self._conn.execute("CREATE TEMP TABLE IF NOT EXISTS bias_names (name TEXT PRIMARY KEY)")
        self._conn.execute("DELETE FROM bias_names")
        self._conn.executemany(
            "INSERT OR IGNORE INTO bias_names VALUES (?)", [(_name(n),) for n in judge_names if n]
        )
        h = rubric.content_hash
        if rubric.mode == "pairwise":
            own_a = "COALESCE(gen_a IN (SELECT name FROM bias_names), 0)"
            own_b = "COALESCE(gen_b IN (SELECT name FROM bias_names), 0)"
            n, own_won = self._conn.execute(
                f"SELECT COUNT(*), COALESCE(SUM(winner = CASE WHEN {own_a} THEN 'A' ELSE 'B' END), 0) "
                f"FROM bias_pairs WHERE rubric = ? AND {own_a} != {own_b}",
                (h,),
            ).fetchone()
            return {"n": int(n), "own_win_rate": _rate(int(own_won), int(n))}
        rows = self._conn.execute(
            "SELECT gen IN (SELECT name FROM bias_names), COUNT(*), SUM(overall) FROM bias_points "
            "WHERE rubric = ? AND gen IS NOT NULL GROUP BY 1",
            (h,),
        ).fetchall()
        by = {bool(own): (int(k), float(s)) for own, k, s in rows}
        own_n, own_sum = by.get(True, (0, 0.0))
        other_n, other_sum = by.get(False, (0, 0.0))
        return {
            "n": own_n,
            "own_mean": round(own_sum / own_n, 4) if own_n else None,
            "other_mean": round(other_sum / other_n, 4) if other_n else None,
            "n_other": other_n,
        }

    def diagnostics(self, rubric: Rubric, judge_names: Iterable[str]) -> dict[str, Any]:
        """All diagnostics that apply to ``rubric``'s mode."""
        out: dict[str, Any] = {"length": self.length(rubric)}
        if rubric.mode == "pairwise":
            out["position"] = self.position(rubric.content_hash)
        out["self_preference"] = self.self_preference(rubric, judge_names)
        return out


# ----------------------------------------------------------------------------------------------
# The same diagnostics from lists


def _fed(
    judgments: Iterable[Judgment],
    verdicts: Iterable["PairVerdict"],
    features: Mapping[str, Mapping[str, Any]] | None = None,
) -> BiasStats:
    stats = BiasStats()
    feats = features or {}
    for j in judgments:
        stats.add_judgment(j, feats.get(j.item_id))
    for v in verdicts:
        stats.add_verdict(v, feats.get(v.item_id))
    return stats


def position_bias(judgments: Iterable[Judgment], verdicts: Iterable["PairVerdict"]) -> dict[str, Any]:
    """First-shown win rate, mean P(first shown wins) and swap-inconsistency rate, over all pairs."""
    total = _Position()
    for pos in _fed(judgments, verdicts)._position.values():
        total += pos
    return total.result()


def length_bias(
    rubric: Rubric,
    judgments: Iterable[Judgment],
    verdicts: Iterable["PairVerdict"],
    features: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """Longer-response win rate (pairwise) or Spearman(score, length) (pointwise)."""
    return _fed(judgments, verdicts, features).length(rubric)


def self_preference(
    rubric: Rubric,
    judgments: Iterable[Judgment],
    verdicts: Iterable["PairVerdict"],
    features: Mapping[str, Mapping[str, Any]],
    judge_names: Iterable[str],
) -> dict[str, Any]:
    """How the judge treats responses its own model generated (needs generator names in ``meta``)."""
    return _fed(judgments, verdicts, features).self_preference(rubric, judge_names)


def diagnostics(
    rubric: Rubric,
    judgments: list[Judgment],
    verdicts: list["PairVerdict"],
    features: Mapping[str, Mapping[str, Any]],
    judge_names: Iterable[str],
) -> dict[str, Any]:
    """All diagnostics that apply to ``rubric``'s mode."""
    return _fed(judgments, verdicts, features).diagnostics(rubric, judge_names)
