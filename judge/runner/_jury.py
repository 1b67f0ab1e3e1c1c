"""Running a jury: each member as an ordinary job (in process, or on the Ray pool), then aggregation.

The aggregation itself (votes, means, weights, agreement) is analysis: :mod:`judge.analysis._jury`.
With ``cluster.enabled: true`` every member's job runs on the Ray pool (``cluster.run_cluster_job``),
one member after another, each with the pool the job's ``cluster`` section describes.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, Callable, Literal, Mapping

from judge.analysis._jury import JurySummary, aggregate, jury_alpha, jury_paths, member_config
from judge.core._config import JobConfig, JuryMember
from judge.core._errors import ConfigError
from judge.core._io import atomic_write, write_json
from judge.inputs._rubric import Rubric, resolve_rubric

__all__ = ["run_jury"]

BackendSource = Any  # a Backend, or a zero-argument factory returning one

MemberValues = dict[str, tuple[str | None, float | None, list[str]]]


def _member_values(mcfg: JobConfig, rubric: Rubric) -> MemberValues:
    """item id -> (final pair verdict or None, P(A wins) or overall, judgment keys) for one member."""
    from judge.analysis._verdicts import read_judgments, read_pair_verdicts, verdicts_path

    out: MemberValues = {}
    if rubric.mode == "pairwise":
        for v in read_pair_verdicts(verdicts_path(mcfg.output)):
            if v.rubric.hash != rubric.content_hash:
                continue
            scored = v.status == "scored"
            keys = [v.judgment_keys[o] for o in v.orders if o in v.judgment_keys]
            out[v.item_id] = (v.winner if scored else None, v.p_a_mean if scored else None, keys)
        return out
    for j in read_judgments(mcfg.output):
        if j.rubric.hash != rubric.content_hash:
            continue
        out[j.item_id] = (None, j.overall if j.status == "scored" else None, [j.key])
    return out


def run_jury(
    cfg: JobConfig,
    backends: Mapping[str, BackendSource] | None = None,
    progress: bool = True,
) -> JurySummary:
    """Run every member of ``cfg.jury`` and aggregate their verdicts per item.

    Args:
        cfg: a job with ``jury`` set.
        backends: member name -> ready backend or factory (tests, or models already loaded); other
            members get the configured backend, shared between members with the same judge.
        progress: progress bars for the member jobs.

    Raises:
        ConfigError: no jury; members whose rubrics mix pairwise with scoring modes; ready
            backends given for a jury that runs on the cluster (a loaded model cannot be sent to
            Ray workers).
    """
    if cfg.jury is None:
        raise ConfigError("run_jury needs a job config with 'jury'")
    t0 = time.perf_counter()
    members = cfg.jury.members
    mcfgs = {m.name: member_config(cfg, m) for m in members}
    rubrics = {name: resolve_rubric(c.rubrics[0]) for name, c in mcfgs.items()}
    kinds = {"pairwise" if r.mode == "pairwise" else "score" for r in rubrics.values()}
    if len(kinds) != 1:
        modes = {n: r.mode for n, r in rubrics.items()}
        raise ConfigError(f"jury members must all judge pairs or all score responses, got {modes}")
    kind: Literal["pairwise", "score"] = kinds.pop()  # type: ignore[assignment]
    if cfg.cluster.enabled:
        if backends:
            raise ConfigError(
                f"jury members {sorted(backends)} were given ready backends, but cluster.enabled is true: "
                "the members run on Ray workers, which load their own models. Pass no backends, or "
                "set cluster.enabled: false to judge in this process."
            )
        summaries = _run_on_cluster(mcfgs, progress)
    else:
        summaries = _run_locally(members, mcfgs, dict(backends or {}), progress)
    per_member = {name: _member_values(mcfgs[name], rubrics[name]) for name in mcfgs}
    weights = {m.name: m.weight for m in members}
    items = sorted({i for vals in per_member.values() for i in vals})
    verdicts = []
    none: tuple[None, None, list[str]] = (None, None, [])
    for item_id in items:
        got = {name: per_member[name].get(item_id, none) for name in mcfgs}
        verdicts.append(
            aggregate(
                kind,
                item_id,
                {n: g[0] for n, g in got.items()},
                {n: g[1] for n, g in got.items()},
                weights,
                cfg.jury.aggregate,
                cfg.scoring.tie_threshold,
                keys={n: g[2] for n, g in got.items()},
            )
        )
    out_path, summary_path = jury_paths(cfg.output)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out_path, "".join(v.model_dump_json() + "\n" for v in verdicts))
    summary = JurySummary(
        output=str(out_path),
        kind=kind,
        aggregate=cfg.jury.aggregate,
        items=len(items),
        members={
            name: {
                "rubric": rubrics[name].id,
                "judge": mcfgs[name].judge.model,
                "output": str(mcfgs[name].output),
                "judgments": summaries[name].judgments,
                "unscored": summaries[name].unscored,
                "weight": weights[name],
                "judgments_per_s": round(summaries[name].judgments_per_s, 3),
            }
            for name in mcfgs
        },
        verdicts=dict(Counter((v.winner or "unscored") if kind == "pairwise" else v.status for v in verdicts)),
        alpha=jury_alpha(kind, per_member),
    )
    summary.wall_s = time.perf_counter() - t0
    write_json(summary_path, summary.to_dict(), indent=2)
    return summary


def _run_on_cluster(mcfgs: dict[str, JobConfig], progress: bool) -> dict[str, Any]:
    from cluster import run_cluster_job

    return {name: run_cluster_job(mcfg, progress=progress) for name, mcfg in mcfgs.items()}


def _run_locally(
    members: list[JuryMember], mcfgs: dict[str, JobConfig], given: dict[str, BackendSource], progress: bool
) -> dict[str, Any]:
    """Members' jobs in this process: members sharing a judge share one backend, one model at a time."""
    from judge.backends._base import create_backend
    from judge.backends._models import resolve_model
    from judge.runner._engine import job_judge_id, run_job

    summaries: dict[str, Any] = {}
    groups: dict[str, list[JuryMember]] = {}
    for m in members:
        if m.name in given:
            groups.setdefault("given:" + m.name, []).append(m)
        else:
            groups.setdefault(mcfgs[m.name].judge.model_dump_json(), []).append(m)
    for key, group in groups.items():
        if key.startswith("given:"):
            for m in group:
                summaries[m.name] = run_job(mcfgs[m.name], backend=given[m.name], progress=progress)
            continue
        jc = mcfgs[group[0].name].judge
        shared = _Shared(lambda jc=jc: create_backend(
            jc.backend, model=resolve_model(jc.model) if jc.backend != "openai" else jc.model, **jc.options
        ))
        try:
            for m in group:
                # The identity comes from the config: a member with nothing left to do loads nothing.
                mcfg = mcfgs[m.name]
                summaries[m.name] = run_job(mcfg, backend=lambda: shared, progress=progress, judge_id=job_judge_id(mcfg))
        finally:
            shared.close_now()  # before the next group's model loads
    return summaries


class _Shared:
    """One backend for the members of a group: created on first use, closed by the jury, not by
    each member's job (its close() does nothing; the jury calls close_now())."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._backend: Any = None

    def _get(self) -> Any:
        if self._backend is None:
            self._backend = self._factory()
        return self._backend

    @property
    def name(self) -> str:
        return self._get().name

    def info(self) -> Any:
        return self._get().info()

    def generate(self, prompts: Any, params: Any) -> Any:
        return self._get().generate(prompts, params)

    def close(self) -> None:
        pass  # the jury closes it after the last member that shares it

    def close_now(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None
