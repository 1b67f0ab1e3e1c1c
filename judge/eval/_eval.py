"""``judgeloop eval``: how well a judge configuration agrees with human labels.

Input: a JSONL set of human-labelled rows in one of two formats:

- pairwise: ``{"id", "prompt", "response_a", "response_b", "label": "a"|"b"|"tie", "meta"?}``
- pointwise: ``{"id", "prompt", "response", "reference"?, "human_score", "scale": [min, max], "meta"?}``

The judge configuration (a job config) runs over the set as an ordinary job (resumable, cached);
its verdicts are compared with the labels:

- pairwise: accuracy with ties (three-way) and without (pairs humans decided; a judge tie or an
  inconsistent pair counts as wrong), accuracy on the pairs both decided, Cohen's kappa, the
  confusion matrix, swap consistency, position and length bias (next to the humans' own
  longer-response rate), and the accuracy a single order (AB) would have had;
- pointwise: the judge's overall score mapped onto the human scale; exact and within-one
  accuracy, quadratic-weighted kappa, Spearman, Kendall, Pearson, mean absolute error, the
  confusion matrix and the score-length correlation of judge and humans.

Every headline number has a seeded percentile-bootstrap 95% interval, and every ``meta`` key with a
few distinct scalar values gets a per-subset breakdown. A jury configuration reports each member,
the aggregated jury and Krippendorff's alpha between members.

Calibration (``--calibrate``) fits, on the same set, the tie threshold of the average-probability
policy (pairs) and per-member jury weights, and can save them into a judge config file that
``judgeloop judge`` and ``judgeloop eval`` load like any other (``--save-config``).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import pydantic
from pydantic import BaseModel, ConfigDict, Field, model_validator

from judge.core._errors import ConfigError, DataError
from judge.core._config import JobConfig
from judge.analysis._metrics import accuracy, bootstrap_ci, cohen_kappa, confusion_matrix, kendall_tau, pearson, spearman
from judge.core._records import Item, stable_hash
from judge.inputs._rubric import Rubric, resolve_rubric

__all__ = [
    "PairLabel",
    "PointLabel",
    "calibrate",
    "eval_table",
    "fit_jury_weights",
    "fit_tie_threshold",
    "pairwise_metrics",
    "pointwise_metrics",
    "read_labelled",
    "run_eval",
    "save_config",
]

Kind = Literal["pairwise", "pointwise"]
PAIR_ROWS = ["a", "b", "tie"]
PAIR_COLS = ["a", "b", "tie", "inconsistent", "unscored"]


class PairLabel(BaseModel):
    """A human-labelled pair."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    prompt: str
    response_a: str
    response_b: str
    label: Literal["a", "b", "tie"]
    meta: dict[str, Any] = Field(default_factory=dict)


class PointLabel(BaseModel):
    """A human-scored response."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    prompt: str
    response: str
    reference: str | None = None
    human_score: float
    scale: tuple[float, float]
    meta: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _in_scale(self) -> "PointLabel":
        lo, hi = self.scale
        if not lo < hi:
            raise ValueError(f"scale must be [min, max] with min < max, got {list(self.scale)}")
        if not lo <= self.human_score <= hi:
            raise ValueError(f"human_score must be in {lo}..{hi}, got {self.human_score}")
        return self


def read_labelled(path: str | Path) -> tuple[Kind, list[Any], list[dict[str, Any]]]:
    """Rows of a labelled set, its format, and the rejected rows (line, error) that were skipped.

    The format is that of the first valid row; rows of the other format or with a repeated id are
    rejected.

    Raises:
        DataError: the file is missing or holds no valid row.
    """
    from judge.inputs._data import iter_rows

    kind: Kind | None = None
    rows: list[Any] = []
    rejects: list[dict[str, Any]] = []
    seen: set[str] = set()
    for line, row, error in iter_rows(path):
        if error is None and row is not None:
            want: Kind = "pairwise" if "label" in row else "pointwise"
            if kind is not None and want != kind:
                error = f"a {want} row in a {kind} set"
            else:
                try:
                    parsed = (PairLabel if want == "pairwise" else PointLabel).model_validate(row)
                except pydantic.ValidationError as exc:
                    error = "; ".join(
                        f"{'.'.join(str(p) for p in e['loc']) or 'row'}: {e['msg']}"
                        for e in exc.errors(include_url=False)
                    )
                else:
                    if parsed.id in seen:
                        error = f"repeated id {parsed.id!r}"
                    else:
                        kind = want
                        seen.add(parsed.id)
                        rows.append(parsed)
        if error is not None:
            rejects.append({"line": line, "error": error})
    if kind is None:
        raise DataError(f"{path}: no valid labelled row ({len(rejects)} rejected; first: {rejects[:1]})")
    if kind == "pointwise" and len({r.scale for r in rows}) > 1:
        raise DataError(f"{path}: rows use several scales {sorted({r.scale for r in rows})}; evaluate one scale at a time")
    return kind, rows, rejects


# ----------------------------------------------------------------------------------------------
# Metrics


def _ci(fn: Callable[[np.ndarray], float], n: int, reps: int, seed: int) -> list[float | None]:
    if reps <= 0 or n == 0:
        return [None, None]
    lo, hi = bootstrap_ci(fn, n, reps=reps, seed=seed)
    return [None if math.isnan(lo) else round(lo, 4), None if math.isnan(hi) else round(hi, 4)]


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 4)


def _stat(values: Callable[[np.ndarray], float], n: int, reps: int, seed: int) -> dict[str, Any]:
    return {"value": _num(values(np.arange(n))), "ci95": _ci(values, n, reps, seed)}


def _subset_keys(metas: list[dict[str, Any]]) -> dict[str, list[Any]]:
    keys: dict[str, set[Any]] = {}
    for m in metas:
        for k, v in m.items():
            if isinstance(v, (str, int, bool)) and not isinstance(v, float):
                keys.setdefault(k, set()).add(v)
            else:
                keys.setdefault(k, set()).add(None)  # non-scalar: not a subset key
    return {k: sorted(v, key=str) for k, v in keys.items() if None not in v and 1 < len(v) <= 20}


def pairwise_metrics(
    labels: list[str],
    preds: list[str],
    *,
    consistent: list[bool | None] | None = None,
    len_a: list[int] | None = None,
    len_b: list[int] | None = None,
    metas: list[dict[str, Any]] | None = None,
    reps: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Agreement of pair verdicts with human labels.

    Args:
        labels: human labels, ``a`` / ``b`` / ``tie``.
        preds: judge verdicts, ``a`` / ``b`` / ``tie`` / ``inconsistent`` / ``unscored``.
        consistent: per pair, whether both orders agreed (None: fewer than two orders).
        len_a, len_b: response lengths (length bias).
        metas: per pair ``meta`` (subset breakdowns).
        reps, seed: bootstrap replicates and seed.
    """
    n = len(labels)
    lab = np.array(labels, dtype=object)
    pre = np.array(preds, dtype=object)

    def acc_all(idx: np.ndarray) -> float:
        return float(np.mean(lab[idx] == pre[idx])) if len(idx) else math.nan

    def acc_no_ties(idx: np.ndarray) -> float:
        sel = idx[lab[idx] != "tie"]
        return float(np.mean(lab[sel] == pre[sel])) if len(sel) else math.nan

    def acc_decisive(idx: np.ndarray) -> float:
        sel = idx[(lab[idx] != "tie") & np.isin(pre[idx], ["a", "b"])]
        return float(np.mean(lab[sel] == pre[sel])) if len(sel) else math.nan

    def kappa(idx: np.ndarray) -> float:
        sel = idx[pre[idx] != "unscored"]
        if len(sel) == 0:
            return math.nan
        p = ["tie" if x == "inconsistent" else x for x in pre[sel]]
        return cohen_kappa(list(lab[sel]), p, labels=PAIR_ROWS)

    out: dict[str, Any] = {
        "n": n,
        "scored": int(np.sum(pre != "unscored")),
        "coverage": _num(float(np.mean(pre != "unscored"))) if n else None,
        "accuracy": _stat(acc_all, n, reps, seed),
        "accuracy_no_ties": _stat(acc_no_ties, n, reps, seed),
        "decisive_accuracy": _stat(acc_decisive, n, reps, seed),
        "n_decisive": int(np.sum((lab != "tie") & np.isin(pre, ["a", "b"]))),
        "kappa": _stat(kappa, n, reps, seed),
        "confusion": {"rows": PAIR_ROWS, "cols": PAIR_COLS, "matrix": confusion_matrix(labels, preds, PAIR_ROWS, PAIR_COLS)},
        "predicted": dict(Counter(preds)),
    }
    if consistent is not None:
        both = [c for c in consistent if c is not None]
        out["swap_consistency"] = _num(sum(both) / len(both)) if both else None
        out["n_both_orders"] = len(both)
    if len_a is not None and len_b is not None:
        j_n = j_long = h_n = h_long = 0
        for la, lb, lbl, prd in zip(len_a, len_b, labels, preds):
            if la == lb:
                continue
            longer = "a" if la > lb else "b"
            if lbl in ("a", "b"):
                h_n += 1
                h_long += lbl == longer
            if prd in ("a", "b"):
                j_n += 1
                j_long += prd == longer
        out["length"] = {
            "judge_longer_win_rate": _num(j_long / j_n) if j_n else None,
            "human_longer_win_rate": _num(h_long / h_n) if h_n else None,
            "n_judge": j_n,
            "n_human": h_n,
        }
    if metas:
        subsets: dict[str, Any] = {}
        for key, values in _subset_keys(metas).items():
            subsets[key] = {}
            for v in values:
                idx = np.array([i for i, m in enumerate(metas) if m.get(key) == v])
                subsets[key][str(v)] = {
                    "n": len(idx),
                    "accuracy": _num(acc_all(idx)),
                    "accuracy_no_ties": _num(acc_no_ties(idx)),
                    "kappa": _num(kappa(idx)),
                }
        out["subsets"] = subsets
    return out


def pointwise_metrics(
    human: list[float],
    pred: list[float | None],
    scale: tuple[float, float],
    *,
    lengths: list[int] | None = None,
    metas: list[dict[str, Any]] | None = None,
    reps: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Agreement of judge scores (on the human scale; None = unscored) with human scores."""
    lo, hi = scale
    n = len(human)
    h = np.array(human, dtype=float)
    p = np.array([math.nan if x is None else x for x in pred], dtype=float)
    ok = ~np.isnan(p)
    levels = list(range(int(math.ceil(lo)), int(math.floor(hi)) + 1))
    integer_scale = float(lo).is_integer() and float(hi).is_integer() and len(levels) >= 2

    def rounded(x: np.ndarray) -> np.ndarray:
        return np.clip(np.floor(x + 0.5), lo, hi)

    def scored(idx: np.ndarray) -> np.ndarray:
        return idx[ok[idx]]

    def exact(idx: np.ndarray) -> float:
        s = idx
        if len(s) == 0:
            return math.nan
        hit = ok[s] & (rounded(np.nan_to_num(p[s])) == rounded(h[s]))
        return float(np.mean(hit))  # an unscored item counts as a miss

    def within_one(idx: np.ndarray) -> float:
        if len(idx) == 0:
            return math.nan
        hit = ok[idx] & (np.abs(rounded(np.nan_to_num(p[idx])) - rounded(h[idx])) <= 1)
        return float(np.mean(hit))

    def kappa(idx: np.ndarray) -> float:
        s = scored(idx)
        if len(s) == 0 or not integer_scale:
            return math.nan
        return cohen_kappa(
            [int(x) for x in rounded(h[s])], [int(x) for x in rounded(p[s])], labels=levels, weights="quadratic"
        )

    def rho(idx: np.ndarray) -> float:
        s = scored(idx)
        return spearman(h[s], p[s]) if len(s) >= 2 else math.nan

    def tau(idx: np.ndarray) -> float:
        s = scored(idx)
        return kendall_tau(h[s], p[s]) if len(s) >= 2 else math.nan

    def r(idx: np.ndarray) -> float:
        s = scored(idx)
        return pearson(h[s], p[s]) if len(s) >= 2 else math.nan

    def mae(idx: np.ndarray) -> float:
        s = scored(idx)
        return float(np.mean(np.abs(h[s] - p[s]))) if len(s) else math.nan

    out: dict[str, Any] = {
        "n": n,
        "scored": int(ok.sum()),
        "coverage": _num(float(ok.mean())) if n else None,
        "scale": [lo, hi],
        "accuracy": _stat(exact, n, reps, seed),
        "within_one": _stat(within_one, n, reps, seed),
        "kappa_quadratic": _stat(kappa, n, reps, seed),
        "spearman": _stat(rho, n, reps, seed),
        "kendall": _stat(tau, n, reps, seed),
        "pearson": _stat(r, n, reps, seed),
        "mae": _stat(mae, n, reps, seed),
    }
    if integer_scale:
        cols = [str(x) for x in levels] + ["unscored"]
        preds = [str(int(rounded(np.array([x]))[0])) if not math.isnan(x) else "unscored" for x in p]
        truth = [str(int(x)) for x in rounded(h)]
        out["confusion"] = {"rows": cols[:-1], "cols": cols, "matrix": confusion_matrix(truth, preds, cols[:-1], cols)}
    if lengths is not None:
        s = np.arange(n)[ok]
        out["length"] = {
            "judge_score_length_spearman": _num(spearman(p[s], np.array(lengths)[s])) if len(s) >= 2 else None,
            "human_score_length_spearman": _num(spearman(h, lengths)) if n >= 2 else None,
        }
    if metas:
        subsets: dict[str, Any] = {}
        for key, values in _subset_keys(metas).items():
            subsets[key] = {}
            for v in values:
                idx = np.array([i for i, m in enumerate(metas) if m.get(key) == v])
                subsets[key][str(v)] = {
                    "n": len(idx),
                    "accuracy": _num(exact(idx)),
                    "kappa_quadratic": _num(kappa(idx)),
                    "spearman": _num(rho(idx)),
                }
        out["subsets"] = subsets
    return out


# ----------------------------------------------------------------------------------------------
# Calibration


def fit_tie_threshold(p_a: list[float | None], labels: list[str], grid: int = 101) -> dict[str, Any]:
    """The tie band of the average-probability policy that maximises three-way accuracy.

    Candidates are 0 and every |p - 0.5| observed (plus a regular grid up to 0.5); ties between
    candidates go to the narrowest band (fewest ties declared). Pairs without a probability count
    as wrong whatever the band.
    """
    pairs = [(p, lbl) for p, lbl in zip(p_a, labels)]
    cands = sorted({0.0} | {round(abs(p - 0.5), 6) for p, _ in pairs if p is not None} | {i * 0.5 / (grid - 1) for i in range(grid)})

    def acc(t: float) -> float:
        hit = 0
        for p, lbl in pairs:
            if p is None:
                continue
            pred = "tie" if abs(p - 0.5) <= t else ("a" if p > 0.5 else "b")
            hit += pred == lbl
        return hit / len(pairs) if pairs else math.nan

    best_t, best = 0.0, -1.0
    for t in cands:
        a = acc(t)
        if a > best + 1e-12:
            best_t, best = t, a
    return {"tie_threshold": round(best_t, 6), "accuracy": _num(best), "n": len(pairs)}


def fit_jury_weights(member_metrics: dict[str, dict[str, Any]], kind: str) -> dict[str, float]:
    """Per-member vote weights from their agreement with humans.

    Pairs: the log-odds of each member's accuracy on the pairs humans decided (the optimal weights
    for independent voters), floored at 0 so a member worse than chance does not vote. Scores: the
    member's Spearman correlation with humans, floored at 0.
    """
    weights = {}
    for name, m in member_metrics.items():
        if kind == "pairwise":
            acc = m["accuracy_no_ties"]["value"]
            if acc is None:
                weights[name] = 0.0
                continue
            acc = min(max(acc, 0.01), 0.99)
            weights[name] = round(max(0.0, math.log(acc / (1 - acc))), 4)
        else:
            rho = m["spearman"]["value"]
            weights[name] = round(max(0.0, rho or 0.0), 4)
    return weights


def calibrate(report: dict[str, Any], cfg: JobConfig) -> dict[str, Any]:
    """Fitted values for ``cfg`` from an eval report (see :func:`run_eval`): the changes to apply."""
    info: dict[str, Any] = {}
    if cfg.jury is not None:
        weights = fit_jury_weights(report["members"], report["kind"])
        info["jury_weights"] = weights
    if report["kind"] == "pairwise":
        fits = {name: j["_fit"] for name, j in report["judges"].items() if j.get("_fit")}
        if fits:
            info["tie_threshold"] = next(iter(fits.values()))
    return info


def save_config(cfg: JobConfig, path: str | Path, calibration: dict[str, Any], source: dict[str, Any]) -> Path:
    """Write ``cfg`` with the calibrated values as a judge config file (YAML).

    ``data``, ``output`` and ``limit`` are left out: they belong to each run, not to the judge.
    """
    import yaml

    dumped = cfg.model_dump(mode="json", exclude_defaults=True)
    for k in ("data", "output", "limit"):
        dumped.pop(k, None)
    scoring = dumped.setdefault("scoring", {})
    if "tie_threshold" in calibration:
        scoring["pairwise_policy"] = "average-probability"
        scoring["tie_threshold"] = calibration["tie_threshold"]["tie_threshold"]
    if "jury_weights" in calibration and cfg.jury is not None:
        jury = cfg.jury.model_dump(mode="json", exclude_defaults=True)
        for m in jury["members"]:
            m["weight"] = calibration["jury_weights"][m["name"]]
        jury["aggregate"] = "weighted"
        dumped["jury"] = jury
    scoring["calibration"] = {**source, "fitted": calibration}
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    header = (
        f"# judge config calibrated by `judgeloop eval --calibrate` on {source.get('data')}\n"
        "# Use it with: judgeloop judge --config THIS --data ... --output ...\n"
    )
    p.write_text(header + yaml.safe_dump(dumped, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return p


# ----------------------------------------------------------------------------------------------
# Running


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _items(kind: Kind, rows: list[Any]) -> list[Item]:
    if kind == "pairwise":
        return [Item(id=r.id, prompt=r.prompt, response_a=r.response_a, response_b=r.response_b, meta=r.meta) for r in rows]
    return [Item(id=r.id, prompt=r.prompt, response=r.response, reference=r.reference, meta=r.meta) for r in rows]


def _check_rubrics(kind: Kind, rubrics: list[Rubric], rows: list[Any]) -> None:
    for r in rubrics:
        if kind == "pairwise" and r.mode != "pairwise":
            raise ConfigError(f"a pairwise labelled set needs a pairwise rubric; {r.id!r} is {r.mode}")
        if kind == "pointwise" and r.mode == "pairwise":
            raise ConfigError(f"a pointwise labelled set needs a pointwise or reference rubric; {r.id!r} is pairwise")
        if r.mode == "reference":
            missing = [row.id for row in rows if row.reference is None]
            if missing:
                raise ConfigError(
                    f"rubric {r.id!r} grades against a reference; {len(missing)} rows have none (first: {missing[0]!r})"
                )


def default_output_dir(cfg: JobConfig, data: Path) -> Path:
    """``runs/eval/<set>-<hash>``: one directory per labelled set and judge configuration."""
    relevant = cfg.model_dump(mode="json", exclude={"data", "output", "limit", "batch_size", "cluster", "cache_dir"})
    return Path("runs") / "eval" / f"{data.stem}-{stable_hash(relevant)[:10]}"


def _judge_preds(kind: Kind, cfg: JobConfig, rubric: Rubric, rows: list[Any]) -> dict[str, Any]:
    """Per row, the judge's verdict / score, from a finished job's files."""
    from judge.scoring._scoring import sampling_for
    from judge.analysis._verdicts import pair_verdicts, read_judgments

    sampling = sampling_for(rubric, cfg)
    judgments = [
        j for j in read_judgments(cfg.output) if j.rubric.hash == rubric.content_hash and j.sampling == sampling
    ]
    by_id: dict[str, Any] = {}
    if kind == "pairwise":
        s = cfg.scoring
        for v in pair_verdicts(judgments, s.pairwise_policy, s.tie_threshold, cfg.sampling.seed):
            by_id[v.item_id] = v
        single = {
            v.item_id: v
            for v in pair_verdicts([j for j in judgments if j.order == "AB"], "strict", 0.0, cfg.sampling.seed)
        }
        return {"verdicts": by_id, "single": single, "judgments": judgments}
    for j in judgments:
        by_id[j.item_id] = j
    return {"judgments": by_id}


def _pair_pred(v: Any) -> str:
    if v is None or v.status != "scored" or v.winner is None:
        return "unscored"
    return {"A": "a", "B": "b"}.get(v.winner, v.winner)


def _evaluate_one(
    kind: Kind, cfg: JobConfig, rubric: Rubric, rows: list[Any], reps: int, seed: int
) -> dict[str, Any]:
    from judge.analysis._bias import features_of, position_bias

    got = _judge_preds(kind, cfg, rubric, rows)
    metas = [r.meta for r in rows]
    if kind == "pairwise":
        verdicts = got["verdicts"]
        labels = [r.label for r in rows]
        preds = [_pair_pred(verdicts.get(r.id)) for r in rows]
        m = pairwise_metrics(
            labels,
            preds,
            consistent=[verdicts[r.id].consistent if r.id in verdicts else None for r in rows],
            len_a=[len(r.response_a) for r in rows],
            len_b=[len(r.response_b) for r in rows],
            metas=metas,
            reps=reps,
            seed=seed,
        )
        m["position"] = position_bias(got["judgments"], list(verdicts.values()))
        single = got["single"]
        if single and any(v.consistent is not None for v in verdicts.values()):
            sp = [_pair_pred(single.get(r.id)) for r in rows]
            m["single_order_AB"] = {
                "accuracy": _num(accuracy(labels, sp)),
                "accuracy_no_ties": _num(
                    accuracy([lbl for lbl in labels if lbl != "tie"], [p for p, lbl in zip(sp, labels) if lbl != "tie"])
                ),
            }
        p_means = [verdicts[r.id].p_a_mean if r.id in verdicts and verdicts[r.id].p_source == "logprobs" else None for r in rows]
        if any(p is not None for p in p_means):
            m["_fit"] = fit_tie_threshold(p_means, labels)
        m["policy"] = cfg.scoring.pairwise_policy
        return m
    judgments = got["judgments"]
    lo, hi = rows[0].scale
    preds: list[float | None] = []
    for r in rows:
        j = judgments.get(r.id)
        preds.append(None if j is None or j.status != "scored" or j.overall is None else lo + j.overall * (hi - lo))
    m = pointwise_metrics(
        [r.human_score for r in rows], preds, (lo, hi), lengths=[len(r.response) for r in rows], metas=metas, reps=reps, seed=seed
    )
    _ = features_of  # lengths come straight from the labelled rows
    return m


def run_eval(
    cfg: JobConfig,
    data: str | Path,
    output_dir: str | Path | None = None,
    backend: Any = None,
    backends: dict[str, Any] | None = None,
    progress: bool = True,
    bootstrap: int = 1000,
    calibrate_: bool = False,
    save_path: str | Path | None = None,
) -> dict[str, Any]:
    """Judge a labelled set with ``cfg`` and report agreement with the labels.

    Args:
        cfg: the judge configuration (its ``data`` and ``output`` are replaced).
        data: the labelled JSONL set.
        output_dir: where items, judgments and the report go (default :func:`default_output_dir`).
        backend: a ready backend or factory for a single judge.
        backends: jury member name -> backend or factory.
        progress: progress bars.
        bootstrap: bootstrap replicates for the 95% intervals (0 = none).
        calibrate_: fit the tie threshold and jury weights on this set.
        save_path: with calibration, write the calibrated judge config here.

    Returns:
        The report (also written to ``<output_dir>/report.json``).
    """
    from judge.core._io import atomic_write
    from judge.runner._engine import run_job

    t0 = time.perf_counter()
    data = Path(data)
    kind, rows, rejects = read_labelled(data)
    out_dir = Path(output_dir) if output_dir is not None else default_output_dir(cfg, data)
    out_dir.mkdir(parents=True, exist_ok=True)
    items_path = out_dir / "items.jsonl"
    atomic_write(items_path, "".join(i.model_dump_json() + "\n" for i in _items(kind, rows)))
    job = cfg.model_copy(update={"data": items_path, "output": out_dir / "judgments.jsonl", "limit": None})
    seed = cfg.sampling.seed
    report: dict[str, Any] = {
        "data": str(data),
        "data_sha256": _file_hash(data),
        "kind": kind,
        "rows": len(rows),
        "rejected": rejects,
        "output_dir": str(out_dir),
        "scoring": cfg.scoring.model_dump(mode="json", exclude={"calibration"}),
        "pairwise_orders": cfg.pairwise_orders,
        "bootstrap": {"reps": bootstrap, "seed": seed, "level": 0.95},
        "judges": {},
    }
    if cfg.jury is None:
        rubrics = [resolve_rubric(r) for r in cfg.rubrics]
        _check_rubrics(kind, rubrics, rows)
        summary = run_job(job, backend=backend, progress=progress)
        report["judge"] = summary.judge
        report["timing"] = {
            "judge_s": round(summary.judge_s, 3),
            "new_judgments": summary.new_judgments,
            "judgments_per_s": round(summary.judgments_per_s, 3),
        }
        for rubric in rubrics:
            report["judges"][rubric.id] = _evaluate_one(kind, job, rubric, rows, bootstrap, seed)
    else:
        from judge.analysis._jury import member_config, run_jury

        for m in cfg.jury.members:
            _check_rubrics(kind, [resolve_rubric(member_config(job, m).rubrics[0])], rows)
        jsum = run_jury(job, backends=backends, progress=progress)
        report["jury"] = {"alpha": jsum.alpha, "aggregate": jsum.aggregate, "members": jsum.members}
        report["members"] = {}
        for m in cfg.jury.members:
            mcfg = member_config(job, m)
            report["members"][m.name] = _evaluate_one(kind, mcfg, resolve_rubric(mcfg.rubrics[0]), rows, bootstrap, seed)
        report["judges"]["jury"] = _evaluate_jury(kind, job, rows, bootstrap, seed)
    if calibrate_:
        fitted = calibrate(report, cfg)
        report["calibration"] = fitted
        if save_path is not None:
            src = {"data": str(data), "data_sha256": report["data_sha256"], "rows": len(rows)}
            report["calibration"]["saved_to"] = str(save_config(cfg, save_path, fitted, src))
    for j in list(report["judges"].values()) + list(report.get("members", {}).values()):
        fit = j.pop("_fit", None)
        if fit is not None:
            j["tie_threshold_fit"] = fit
    report["wall_s"] = round(time.perf_counter() - t0, 3)
    atomic_write(out_dir / "report.json", json.dumps(report, indent=2) + "\n")
    return report


def _evaluate_jury(kind: Kind, job: JobConfig, rows: list[Any], reps: int, seed: int) -> dict[str, Any]:
    from judge.analysis._jury import JuryVerdict, _jury_paths

    path, _ = _jury_paths(job.output)
    with path.open("r", encoding="utf-8") as fh:
        verdicts = {v.item_id: v for v in (JuryVerdict.model_validate_json(line) for line in fh if line.strip())}
    metas = [r.meta for r in rows]
    if kind == "pairwise":
        preds = []
        for r in rows:
            v = verdicts.get(r.id)
            preds.append("unscored" if v is None or v.status != "scored" else {"A": "a", "B": "b"}.get(v.winner, v.winner))
        return pairwise_metrics(
            [r.label for r in rows],
            preds,
            len_a=[len(r.response_a) for r in rows],
            len_b=[len(r.response_b) for r in rows],
            metas=metas,
            reps=reps,
            seed=seed,
        )
    lo, hi = rows[0].scale
    preds2: list[float | None] = []
    for r in rows:
        v = verdicts.get(r.id)
        preds2.append(None if v is None or v.status != "scored" or v.value is None else lo + v.value * (hi - lo))
    return pointwise_metrics(
        [r.human_score for r in rows], preds2, (lo, hi), lengths=[len(r.response) for r in rows], metas=metas, reps=reps, seed=seed
    )


# ----------------------------------------------------------------------------------------------
# Report table


def _v(stat: dict[str, Any] | None, pct: bool = True) -> str:
    if not stat or stat.get("value") is None:
        return "n/a"
    lo, hi = stat.get("ci95") or [None, None]
    fmt = (lambda x: f"{100 * x:.1f}%") if pct else (lambda x: f"{x:.3f}")
    ci = f" [{fmt(lo)}, {fmt(hi)}]" if lo is not None and hi is not None else ""
    return fmt(stat["value"]) + ci


def _judge_lines(name: str, m: dict[str, Any], kind: str) -> list[str]:
    lines = [f"  {name}: n {m['n']}, scored {m['scored']} (coverage {100 * (m['coverage'] or 0):.1f}%)"]
    if kind == "pairwise":
        lines += [
            f"    accuracy (3-way, ties included)  {_v(m['accuracy'])}",
            f"    accuracy (human-decided pairs)   {_v(m['accuracy_no_ties'])}",
            f"    {'accuracy (both decided, n=' + str(m['n_decisive']) + ')':<34}{_v(m['decisive_accuracy'])}",
            f"    Cohen's kappa                     {_v(m['kappa'], pct=False)}",
        ]
        if m.get("swap_consistency") is not None:
            lines.append(f"    swap consistency                  {100 * m['swap_consistency']:.1f}% of {m['n_both_orders']} pairs")
        if m.get("single_order_AB"):
            so = m["single_order_AB"]
            lines.append(
                f"    one order (AB) only               accuracy {100 * (so['accuracy'] or 0):.1f}%, "
                f"human-decided {100 * (so['accuracy_no_ties'] or 0):.1f}%"
            )
        pos = m.get("position") or {}
        if pos.get("n_verdicts"):
            rate = pos.get("first_shown_win_rate")
            lines.append(
                f"    position bias                     first shown wins {100 * rate:.1f}% of {pos['n_verdicts']} "
                f"per-order verdicts" + (f"; P(first shown) {pos['mean_p_first_shown']:.3f}" if pos.get("mean_p_first_shown") is not None else "")
            )
        ln = m.get("length") or {}
        if ln:
            j, h = ln.get("judge_longer_win_rate"), ln.get("human_longer_win_rate")
            lines.append(
                f"    length bias                       longer wins: judge {'n/a' if j is None else f'{100 * j:.1f}%'}"
                f" (n={ln['n_judge']}), humans {'n/a' if h is None else f'{100 * h:.1f}%'} (n={ln['n_human']})"
            )
        conf = m["confusion"]
        lines.append("    confusion (rows human, cols judge): " + " ".join(f"{c:>12}" for c in conf["cols"]))
        for rname, row in zip(conf["rows"], conf["matrix"]):
            lines.append(f"      {rname:<34}" + " ".join(f"{x:>12}" for x in row))
        if m.get("tie_threshold_fit"):
            f = m["tie_threshold_fit"]
            lines.append(f"    fitted tie band                   {f['tie_threshold']} (accuracy {100 * (f['accuracy'] or 0):.1f}%)")
    else:
        lines += [
            f"    exact accuracy                    {_v(m['accuracy'])}",
            f"    within one level                  {_v(m['within_one'])}",
            f"    kappa (quadratic)                 {_v(m['kappa_quadratic'], pct=False)}",
            f"    Spearman                          {_v(m['spearman'], pct=False)}",
            f"    Kendall tau-b                     {_v(m['kendall'], pct=False)}",
            f"    Pearson                           {_v(m['pearson'], pct=False)}",
            f"    mean absolute error               {_v(m['mae'], pct=False)}",
        ]
        ln = m.get("length") or {}
        if ln:
            lines.append(
                f"    Spearman(score, length)           judge {_f(ln.get('judge_score_length_spearman'))}, "
                f"humans {_f(ln.get('human_score_length_spearman'))}"
            )
    for key, groups in (m.get("subsets") or {}).items():
        lines.append(f"    by meta.{key}:")
        for value, s in groups.items():
            extra = (
                f"accuracy {_pct(s['accuracy'])}, human-decided {_pct(s['accuracy_no_ties'])}, kappa {_f(s['kappa'])}"
                if kind == "pairwise"
                else f"accuracy {_pct(s['accuracy'])}, kappa {_f(s['kappa_quadratic'])}, Spearman {_f(s['spearman'])}"
            )
            lines.append(f"      {value:<20} n {s['n']:>4}  {extra}")
    return lines


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def eval_table(report: dict[str, Any]) -> str:
    """The report as a readable table."""
    lines = [
        f"eval  {report['data']}  ({report['kind']}, {report['rows']} rows, {len(report['rejected'])} rejected)",
        f"  scoring {report['scoring']['method']}, policy {report['scoring']['pairwise_policy']}"
        + (f" (tie band {report['scoring']['tie_threshold']})" if report["scoring"]["pairwise_policy"] == "average-probability" else "")
        + f", orders {report['pairwise_orders']}; 95% intervals from {report['bootstrap']['reps']} bootstrap resamples (seed {report['bootstrap']['seed']})",
    ]
    if report.get("timing"):
        t = report["timing"]
        lines.append(f"  judge {t['judge_s']:.1f}s for {t['new_judgments']} new judgments ({t['judgments_per_s']:.2f}/s)")
    for name, m in report.get("members", {}).items():
        lines += _judge_lines(f"member {name}", m, report["kind"])
    for name, m in report["judges"].items():
        lines += _judge_lines(name, m, report["kind"])
    if report.get("jury"):
        a = {k: v for k, v in report["jury"]["alpha"].items() if k not in ("members", "items")}
        lines.append("  Krippendorff's alpha between members: " + ", ".join(f"{k} {v}" for k, v in a.items()))
    if report.get("calibration"):
        c = report["calibration"]
        if "tie_threshold" in c:
            lines.append(f"  calibrated tie band: {c['tie_threshold']['tie_threshold']} (accuracy {_pct(c['tie_threshold']['accuracy'])})")
        if "jury_weights" in c:
            lines.append("  calibrated jury weights: " + ", ".join(f"{k} {v}" for k, v in c["jury_weights"].items()))
        if c.get("saved_to"):
            lines.append(f"  saved: {c['saved_to']}")
    lines.append(f"  report: {report['output_dir']}/report.json")
    return "\n".join(lines)
