"""``judgeloop eval``: how well a judge configuration agrees with human labels.

The judge configuration (a job config) runs over a labelled set (:mod:`judge.eval._labels`) as an
ordinary job (resumable, cached); its verdicts are compared with the labels:

- pairwise: accuracy with ties (three-way) and without (pairs humans decided; a judge tie or an
  inconsistent pair counts as wrong), accuracy on the pairs both decided, Cohen's kappa, the
  confusion matrix, swap consistency, position and length bias (next to the humans' own
  longer-response rate), and the accuracy a single order (AB) would have had;
- pointwise: the judge's overall score mapped onto the human scale; exact and within-one
  accuracy, quadratic-weighted kappa, Spearman, Kendall, Pearson, mean absolute error, the
  confusion matrix and the score-length correlation of judge and humans.

Every headline number has a seeded percentile-bootstrap 95% interval and the count of resamples on
which it was undefined (:mod:`judge.eval._metrics`). A jury configuration reports each member, the
aggregated jury and Krippendorff's alpha between members. Calibration (``--calibrate``) fits the
tie band and jury weights on the same set (:mod:`judge.eval._calibration`).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from judge.core._config import JobConfig
from judge.core._errors import ConfigError
from judge.core._records import Item, stable_hash
from judge.eval._calibration import calibrate, fit_tie_threshold, save_config
from judge.eval._labels import Kind, read_labelled
from judge.eval._metrics import _num, pair_prediction, pairwise_metrics, pointwise_metrics
from judge.eval._report import BootstrapSettings, EvalReport, EvalTiming, JuryAgreement, RejectedRow
from judge.analysis._metrics import accuracy
from judge.inputs._data import DatasetReport
from judge.inputs._rubric import Rubric, resolve_rubric

__all__ = ["default_output_dir", "run_eval"]

#: Coverage of every interval in an eval report.
CI_LEVEL = 0.95


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


def _judge_preds(kind: Kind, cfg: JobConfig, rubric: Rubric, rows: list[Any], backend: Any) -> dict[str, Any]:
    """Per row, the judge's verdict / score, from a finished job's files."""
    from judge.analysis import pair_verdicts, read_judgments
    from judge.scoring import Judge

    # The decoding parameters this job's requests carried, asked of the judge the job ran (a
    # ready backend decides its own tokenizer; otherwise the configured one), without loading it:
    # an output folder reused with other settings holds other judgments, which are not this job's.
    sampling = Judge.from_spec(cfg, backend if hasattr(backend, "generate") else None).params(rubric)
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


def _evaluate_one(
    kind: Kind, cfg: JobConfig, rubric: Rubric, rows: list[Any], reps: int, seed: int, backend: Any = None
) -> dict[str, Any]:
    """One judge's metrics; pairwise with logprobs also carries ``tie_threshold_fit``."""
    from judge.analysis import position_bias

    got = _judge_preds(kind, cfg, rubric, rows, backend)
    metas = [r.meta for r in rows]
    if kind == "pairwise":
        verdicts = got["verdicts"]
        labels = [r.label for r in rows]
        preds = [pair_prediction(verdicts.get(r.id)) for r in rows]
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
            sp = [pair_prediction(single.get(r.id)) for r in rows]
            m["single_order_AB"] = {
                "accuracy": _num(accuracy(labels, sp)),
                "accuracy_no_ties": _num(
                    accuracy([lbl for lbl in labels if lbl != "tie"], [p for p, lbl in zip(sp, labels) if lbl != "tie"])
                ),
            }
        p_means = [verdicts[r.id].p_a_mean if r.id in verdicts and verdicts[r.id].p_source == "logprobs" else None for r in rows]
        if any(p is not None for p in p_means):
            m["tie_threshold_fit"] = fit_tie_threshold(p_means, labels)
        m["policy"] = cfg.scoring.pairwise_policy
        return m
    judgments = got["judgments"]
    lo, hi = rows[0].scale
    preds: list[float | None] = []
    for r in rows:
        j = judgments.get(r.id)
        preds.append(None if j is None or j.status != "scored" or j.overall is None else lo + j.overall * (hi - lo))
    return pointwise_metrics(
        [r.human_score for r in rows], preds, (lo, hi), lengths=[len(r.response) for r in rows], metas=metas, reps=reps, seed=seed
    )


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
    executor: Any = None,
    judge_id: str | None = None,
) -> EvalReport:
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
        executor: where a single judge's batches run (e.g. a judging job's, lent to its canary),
            with ``judge_id`` its judge's identity (see :func:`judge.runner.run_job`).

    Returns:
        The report (also written to ``<output_dir>/report.json`` as :meth:`EvalReport.to_json`).
    """
    from judge.core._io import atomic_write, write_json
    from judge.runner._engine import run_job

    t0 = time.perf_counter()
    data = Path(data)
    out_dir = Path(output_dir) if output_dir is not None else default_output_dir(cfg, data)
    out_dir.mkdir(parents=True, exist_ok=True)
    data_report = DatasetReport()
    (out_dir / "rejects.jsonl").unlink(missing_ok=True)  # from an earlier read of another version of the set
    kind, rows, rejects = read_labelled(data, cfg.columns, cfg.labels, data_report, out_dir / "rejects.jsonl")
    items_path = out_dir / "items.jsonl"
    atomic_write(items_path, "".join(i.model_dump_json() + "\n" for i in _items(kind, rows)))
    # The items file is already in the item format: the set's column and label mappings are spent.
    job = cfg.model_copy(
        update={"data": items_path, "output": out_dir / "judgments.jsonl", "limit": None, "columns": {}, "labels": {}}
    )
    seed = cfg.sampling.seed
    report = EvalReport(
        data=str(data),
        data_sha256=_file_hash(data),
        kind=kind,
        rows=len(rows),
        rejected=[RejectedRow(**r) for r in rejects],
        dataset=data_report.model_dump(),
        output_dir=str(out_dir),
        scoring=cfg.scoring.model_dump(mode="json", exclude={"calibration"}),
        pairwise_orders=cfg.pairwise_orders,
        bootstrap=BootstrapSettings(reps=bootstrap, seed=seed, level=CI_LEVEL),
    )
    if cfg.jury is None:
        rubrics = [resolve_rubric(r) for r in cfg.rubrics]
        _check_rubrics(kind, rubrics, rows)
        summary = run_job(job, backend=backend, progress=progress, executor=executor, judge_id=judge_id)
        info = summary.judge
        report.judge = info.model_dump(mode="json") if hasattr(info, "model_dump") else dict(info or {})
        report.timing = EvalTiming(
            judge_s=round(summary.judge_s, 3),
            new_judgments=summary.new_judgments,
            judgments_per_s=round(summary.judgments_per_s, 3),
        )
        for rubric in rubrics:
            report.judges[rubric.id] = _evaluate_one(kind, job, rubric, rows, bootstrap, seed, backend)
    else:
        from judge.analysis import member_config
        from judge.runner import run_jury

        for m in cfg.jury.members:
            _check_rubrics(kind, [resolve_rubric(member_config(job, m).rubrics[0])], rows)
        jsum = run_jury(job, backends=backends, progress=progress)
        report.jury = JuryAgreement(alpha=jsum.alpha, aggregate=jsum.aggregate, members=jsum.members)
        report.members = {}
        for m in cfg.jury.members:
            mcfg = member_config(job, m)
            report.members[m.name] = _evaluate_one(
                kind, mcfg, resolve_rubric(mcfg.rubrics[0]), rows, bootstrap, seed, (backends or {}).get(m.name)
            )
        report.judges["jury"] = _evaluate_jury(kind, job, rows, bootstrap, seed)
    if calibrate_:
        fitted = calibrate(report, cfg)
        if save_path is not None:
            src = {"data": str(data), "data_sha256": report.data_sha256, "rows": len(rows)}
            fitted["saved_to"] = str(save_config(cfg, save_path, fitted, src))
        report.calibration = fitted
    report.wall_s = round(time.perf_counter() - t0, 3)
    write_json(out_dir / "report.json", report.to_json(), indent=2)
    return report


def _evaluate_jury(kind: Kind, job: JobConfig, rows: list[Any], reps: int, seed: int) -> dict[str, Any]:
    from judge.analysis import JuryVerdict
    from judge.analysis._jury import jury_paths

    path, _ = jury_paths(job.output)
    with path.open("r", encoding="utf-8") as fh:
        verdicts = {v.item_id: v for v in (JuryVerdict.model_validate_json(line) for line in fh if line.strip())}
    metas = [r.meta for r in rows]
    if kind == "pairwise":
        preds = [pair_prediction(verdicts.get(r.id)) for r in rows]
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
