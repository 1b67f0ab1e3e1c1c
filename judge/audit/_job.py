"""Oversight inside a judging job: its audit sample, drawn when it ends, and its canary re-score.

``audit.budget`` in a job config draws the job's sample into the audit store as the job finishes
(the same draw as ``judgeloop audit sample``); ``audit.canary`` re-scores a frozen labelled set with
the job's own judge, while its backend is still up (cached, so a few dozen items cost seconds), and
compares the agreement with the last accepted canary report: a drop is flagged, and the gate fails
on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from judge.runner._summary import CanaryRun, JobSample

__all__ = ["run_canary", "sample_job", "sample_judgments"]


def sample_judgments(
    judgments: str | Path,
    store_path: str | Path,
    budget: float,
    *,
    seed: int = 0,
    data: str | Path | None = None,
    rubric_refs: Iterable[str] = (),
    jury_path: str | Path | None = None,
    handpicked: Iterable[str] = (),
    uniform_share: float = 0.5,
    policy: str = "strict",
) -> tuple[Any, int]:
    """Draw an audit sample from a judgments file into a store; return the draw and how many samples were new.

    Running it again with the same inputs adds nothing (samples are content-addressed).
    """
    from judge.audit._load import load_items, load_judgments, load_jury_agreement, load_rubrics
    from judge.audit._sampling import SampleConfig, draw_sample
    from judge.audit._store import AuditStore

    js = load_judgments(judgments)
    items = load_items(data, {j.item_id for j in js}) if data else {}
    cfg = SampleConfig(budget=budget, seed=seed, uniform_share=uniform_share, policy=policy)
    result = draw_sample(js, cfg, items=items, rubrics=load_rubrics(list(rubric_refs), js),
                         jury_agreement=load_jury_agreement(jury_path) if jury_path else None, handpicked=handpicked)
    result.run.source = str(judgments)
    store = AuditStore(store_path)
    try:
        store.add_run(result.run)
        added = store.add_samples(result.samples)
    finally:
        store.close()
    return result, added


def sample_job(cfg: Any, output: Path) -> JobSample | None:
    """The job's audit sample, when its config asks for one (``audit.budget``)."""
    a = cfg.audit
    if a is None or a.budget is None:
        return None
    store = a.store_for(output)
    result, added = sample_judgments(output, store, a.budget, seed=a.seed, data=cfg.data, rubric_refs=cfg.rubrics,
                                     uniform_share=a.uniform_share, policy=cfg.scoring.pairwise_policy)
    return JobSample(store=str(store), run_id=result.run_id, samples=len(result.samples), new=added,
                     population=result.population)


class _Borrowed:
    """The job's executor lent to the canary's eval: its end does not close the job's backend."""

    def __init__(self, executor: Any) -> None:
        self._ex = executor

    def run(self, batches: Any) -> Any:
        return self._ex.run(batches)

    def stats(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        pass


def run_canary(cfg: Any, output: Path, executor: Any, judge_id: str, progress: bool = False) -> CanaryRun | None:
    """Re-score the job's canary set on the job's executor and compare with the last accepted report."""
    a = cfg.audit
    if a is None or a.canary is None:
        return None
    from judge.audit._canary import canary_check, load_eval_report
    from judge.core._errors import ConfigError
    from judge.eval._run import run_eval

    out_dir = Path(output).with_name(Path(output).stem + ".canary")
    job = cfg.model_copy(update={"audit": None, "jury": None, "limit": None})
    report = run_eval(job, a.canary, out_dir, executor=_Borrowed(executor), judge_id=judge_id, progress=progress,
                      bootstrap=500)
    current = report.to_json()
    accepted_path = a.accepted_for(output)
    if not accepted_path.is_file():
        return CanaryRun(data=str(a.canary), report=str(out_dir / "report.json"), accepted=None, check=None,
                         flagged=False, detail="no accepted canary report yet: a passing gate accepts this one")
    try:
        check = canary_check(current, load_eval_report(accepted_path))
    except ConfigError as exc:  # another set, or a statistic the reports lack: say so, do not pass silently
        return CanaryRun(data=str(a.canary), report=str(out_dir / "report.json"), accepted=str(accepted_path),
                         check=None, flagged=True, detail=f"canary cannot be compared: {exc}")
    return CanaryRun(data=str(a.canary), report=str(out_dir / "report.json"), accepted=str(accepted_path),
                     check=check.model_dump(mode="json"), flagged=check.flagged, detail=check.detail)
