"""Candidate generation: a policy model writes k sampled responses per prompt, on the judge's runner.

Generation is a :class:`~judge.runner.Task` of the same resumable runner that judges (ledger,
content-addressed cache, rejects, backpressure, the Ray pool behind the ``Executor`` seam), so it
has the same guarantees: a killed run resumes where the file ends, a finished one reruns without
loading a model, a failed request is written as failed and retried by the next run.

Files of a job whose output is ``run/candidates.jsonl``:

- ``run/candidates.jsonl``: one :class:`~rlaif.GeneratedText` per line (``.part`` while it runs),
  directly judgeable as a pointwise dataset (``id``, ``prompt``, ``response``; the rest in meta);
- ``run/candidates.pairs.jsonl`` (``pairs: true``): every pair of one prompt's generated candidates
  as a pairwise item, written atomically at the end;
- ``run/candidates.rejects.jsonl``, ``run/candidates.summary.json``, ``run/candidates.cache.sqlite``.

Seeds: candidate ``i`` of prompt ``p`` is sampled with ``candidate_seed(seed, p, i)``, a hash of the
three, recorded in the candidate's ``sampling.seed``. The k candidates of a prompt differ, and the
same config reproduces the same texts whatever the batch or the order the prompts come in.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from judge.backends._base import Backend, backend_identity, check_backend, identity_of
from judge.core._config import ClusterConfig, GenerateConfig, GenerationSamplingConfig, JobConfig, ModelConfig
from judge.core._errors import ConfigError
from judge.core._io import atomic_write
from judge.core._records import Item, JudgeInfo, Message, SamplingParams, stable_hash
from judge.runner._cache import JudgmentCache, OutputLedger
from judge.runner._engine import JobPaths, job_paths
from judge.runner._runner import Rejects, RunCounts, Runner, failed_line, progress_bar
from judge.runner._summary import ExecutorStats
from judge.runner._task import Executor, LocalExecutor
from rlaif._gen_records import GeneratedText, GenerateSummary, GenerationRequest, PolicyInfo

__all__ = [
    "GENERATION_VERSION",
    "GenerationTask",
    "candidate_id",
    "candidate_seed",
    "generate_candidates",
    "pair_items",
    "pairs_path",
    "read_candidates",
]

#: Part of every generation request key: bumped when the same settings would produce other requests.
GENERATION_VERSION = 1

BackendSource = Backend | Callable[[], Backend]


def candidate_seed(base_seed: int, prompt_id: str, index: int) -> int:
    """The sampling seed of candidate ``index`` of prompt ``prompt_id`` (31 bits, stable across runs)."""
    return int(stable_hash(["candidate-seed", base_seed, prompt_id, index])[:8], 16) & 0x7FFFFFFF


def candidate_id(prompt_id: str, index: int) -> str:
    """A candidate's id: ``<prompt_id>-c<index>``."""
    return f"{prompt_id}-c{index}"


def pairs_path(output: Path) -> Path:
    """Where the pairwise items of a candidates file go: ``<stem>.pairs.jsonl`` beside it."""
    output = Path(output)
    stem = output.name[: -len(output.suffix)] if output.suffix else output.name
    return output.with_name(stem + ".pairs.jsonl")


class GenerationTask:
    """Generation as a runner task: k requests per prompt item, one :class:`GeneratedText` per completion.

    Args:
        identity: the policy's identity (:func:`judge.backends.backend_identity` or ``identity_of``).
        k: candidates per prompt.
        sampling: temperature, top_p, max_tokens and the base seed.
        round_: the RLAIF round, recorded with (and keyed into) every candidate.
        system_column: the prompt row's column holding the system message (kept in the item's meta).
    """

    record_type = GeneratedText

    def __init__(
        self, identity: str, k: int, sampling: GenerationSamplingConfig, round_: int, system_column: str = "system"
    ) -> None:
        self.identity = identity
        self.k = k
        self.sampling = sampling
        self.round = round_
        self.system_column = system_column

    def check(self, item: Item) -> str | None:
        """Why a prompt row cannot be generated for, or None."""
        if not item.prompt.strip():
            return "prompt: empty"
        system = item.meta.get(self.system_column)
        if system is not None and not isinstance(system, str):
            return f"{self.system_column}: the system message must be text, got {type(system).__name__}"
        return None

    def requests(self, item: Item) -> list[GenerationRequest]:
        system = item.meta.get(self.system_column) or None
        messages = ([Message(role="system", content=system)] if system else []) + [
            Message(role="user", content=item.prompt)
        ]
        meta = {k: v for k, v in item.meta.items() if k != self.system_column}
        s = self.sampling
        out = []
        for i in range(self.k):
            params = SamplingParams(
                temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens,
                seed=candidate_seed(s.seed, item.id, i),
            )  # fmt: skip
            # The candidate's id is keyed too: two rows with the same text are two samples, never one.
            key = stable_hash(
                ["generation", GENERATION_VERSION, self.identity, self.round, candidate_id(item.id, i),
                 [m.model_dump() for m in messages], params.model_dump()]
            )  # fmt: skip
            out.append(
                GenerationRequest(
                    key=key, item_id=candidate_id(item.id, i), prompt_id=item.id, candidate=i, prompt=item.prompt,
                    system=system, messages=messages, sampling=params, base_seed=s.seed, round=self.round,
                    prompt_meta=meta,
                )  # fmt: skip
            )
        return out

    def record(self, request: GenerationRequest, completion: Any, info: JudgeInfo, latency_s: float) -> GeneratedText:
        ok = completion.error is None
        return GeneratedText(
            key=request.key, item_id=request.item_id, id=request.item_id, prompt_id=request.prompt_id,
            prompt=request.prompt, system=request.system, response=completion.text if ok else None,
            candidate=request.candidate, round=request.round,
            policy=PolicyInfo(**info.model_dump(), identity=self.identity), sampling=request.sampling,
            base_seed=request.base_seed, status="generated" if ok else "failed", error=completion.error,
            error_kind=completion.error_kind, finish_reason=completion.finish_reason,
            prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens,
            latency_s=latency_s, prompt_meta=request.prompt_meta,
        )  # fmt: skip


# ----------------------------------------------------------------------------------------------
# The job


@dataclass
class _Policy:
    """The policy's identity and where its batches run."""

    identity: str
    executor: Executor
    also_close: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Stop the executor (its backend or workers), then what it ran on (a Ray connection)."""
        try:
            self.executor.close()
        finally:
            for close in self.also_close:
                close()


def _settle(cfg: JobConfig | GenerateConfig, cluster: ClusterConfig | None) -> tuple[GenerateConfig, ClusterConfig]:
    """The generation settings with the output known, and the cluster section (read here, passed down)."""
    if isinstance(cfg, JobConfig):
        if cfg.generate is None:
            raise ConfigError(
                "the job config has no `generate:` section; candidate generation needs one "
                "(see configs/rlaif_round.yaml)"
            )
        gen = cfg.generate
        if gen.output is None:
            gen = gen.model_copy(update={"output": cfg.data})
        return gen, cluster or cfg.cluster
    if cfg.output is None:
        raise ConfigError("generate.output: not set; name the candidates file to write")
    return cfg, cluster or ClusterConfig()


def _config_identity(policy: ModelConfig) -> tuple[str, str]:
    """The policy's resolved model and identity from its config, without loading it."""
    from judge.backends._models import resolve_model

    model = resolve_model(policy.model) if policy.backend != "openai" else policy.model
    return model, backend_identity(policy.backend, model, dict(policy.options))


def _policy(gen: GenerateConfig, cluster: ClusterConfig, backend: BackendSource | None,
            executor: Executor | None) -> _Policy:  # fmt: skip
    """Where batches run: the given executor or backend, a Ray pool (``cluster.enabled``), or this process."""
    if backend is not None:
        if not hasattr(backend, "generate"):  # a factory: made now, to ask it who it is
            made = backend()  # type: ignore[operator]
            return _Policy(identity_of(made), LocalExecutor(lambda: made))
        ready: Backend = backend  # type: ignore[assignment]
        return _Policy(identity_of(ready), LocalExecutor(lambda: ready, owns_backend=False))
    check_backend(gen.policy.backend, dict(gen.policy.options))
    model, identity = _config_identity(gen.policy)
    if executor is not None:
        return _Policy(identity, executor)
    if cluster.enabled:
        from cluster import JudgePool, connect

        conn = connect(cluster)
        try:
            pool = JudgePool(connection=conn, model=gen.policy, cluster=cluster)
        except BaseException:
            conn.close()
            raise
        return _Policy(identity, pool, also_close=[conn.close])
    from judge.backends._base import create_backend

    opts = dict(gen.policy.options)
    return _Policy(identity, LocalExecutor(lambda: create_backend(gen.policy.backend, model=model, **opts)))


def _open_output(output: Path) -> JobPaths:
    """The job's paths, with a finished output reopened for appending (new prompts may have come)."""
    paths = job_paths(output)
    paths.output.parent.mkdir(parents=True, exist_ok=True)
    if paths.output.exists() and not paths.part.exists():
        os.replace(paths.output, paths.part)
    return paths


@dataclass
class _Scan:
    """What the finished candidates file holds."""

    generated: int = 0
    failed: int = 0
    completion_tokens: int = 0
    policy: PolicyInfo | None = None
    by_prompt: dict[str, list[GeneratedText]] = field(default_factory=lambda: defaultdict(list))


def _scan(output: Path, keep: bool) -> _Scan:
    """Count the candidates of the output; with ``keep``, hold the generated ones by prompt (for pairs)."""
    out = _Scan()
    with output.open("r", encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            rec = GeneratedText.model_validate_json(line)
            if out.policy is None:
                out.policy = rec.policy
            if rec.status == "failed":
                out.failed += 1
                continue
            out.generated += 1
            out.completion_tokens += rec.completion_tokens
            if keep:
                out.by_prompt[rec.prompt_id].append(rec)
    return out


def pair_items(by_prompt: dict[str, list[GeneratedText]]) -> list[Item]:
    """Every pair (i < j by candidate index) of each prompt's generated candidates, as pairwise items.

    A pairwise judge sees both orders of each pair, so one order per pair is enough here.
    """
    items = []
    for pid in sorted(by_prompt):
        cands = sorted(by_prompt[pid], key=lambda r: r.candidate)
        for a in range(len(cands)):
            for b in range(a + 1, len(cands)):
                x, y = cands[a], cands[b]
                items.append(
                    Item(
                        id=f"{pid}-c{x.candidate}-c{y.candidate}", prompt=x.prompt, response_a=x.response,
                        response_b=y.response,
                        meta={
                            "prompt_id": pid, "round": x.round, "candidate_a": x.id, "candidate_b": y.id,
                            "keys": [x.key, y.key], "policy_model": x.policy.model,
                            "policy_fingerprint": x.policy.model_hash, "system": x.system, "synthetic": True,
                        },
                    )  # fmt: skip
                )
    return items


def generate_candidates(
    cfg: JobConfig | GenerateConfig,
    backend: BackendSource | None = None,
    executor: Executor | None = None,
    progress: bool = True,
    on_batch: Callable[[int], None] | None = None,
    cluster: ClusterConfig | None = None,
) -> GenerateSummary:
    """Write ``k`` candidates per prompt (or resume a job that did part of it) and return the summary.

    Args:
        cfg: a round config with a ``generate:`` section (its ``cluster`` section is used), or the
            section itself.
        backend: a ready policy backend or a factory, instead of the configured one (in this process).
        executor: where batches run, instead of this process or the Ray pool; the policy identity
            then comes from the config.
        progress: show a progress bar on stderr (it counts prompts).
        on_batch: called with the number of batches written so far (tests use it to crash a run).
        cluster: the Ray pool settings, overriding the config's (``enabled`` runs on Ray actors).

    Raises:
        ConfigError: no ``generate`` section, an unknown backend or option, a model that is not
            there: before any file is made.
        DataError: the prompts dataset does not exist or has a format no reader knows.
    """
    from judge.inputs._data import ItemReader, check_dataset, count_rows

    t0 = time.perf_counter()
    gen, cc = _settle(cfg, cluster)
    assert gen.output is not None
    check_dataset(gen.data)
    policy = _policy(gen, cc, backend, executor)
    try:
        paths = _open_output(gen.output)
        ledger = OutputLedger(paths.cache)
        cache = JudgmentCache(paths.cache)
        # The output file is the truth; the ledger catches up with it (and refills the cache from it).
        ledger.sync(paths.part, on_lines=lambda lines: cache.put_many([(k, x) for k, x in lines if not failed_line(x)]),
                    failed=failed_line)  # fmt: skip
        rejects = Rejects(paths.rejects)
    except BaseException:
        policy.close()
        raise
    rows = count_rows(gen.data)
    total = min(rows, gen.limit) if rows is not None and gen.limit else rows
    bar = progress_bar(total, progress, unit="prompt", desc="generating")

    def on_reject(line: int, row: Any, error: str) -> None:
        rejects.row(line, row, error)
        if rows is not None:  # the bar counts valid prompts: a rejected row leaves its total
            bar.total = min(rows - rejects.rows, gen.limit or rows)
            bar.refresh()

    task = GenerationTask(policy.identity, gen.k, gen.sampling, gen.round, gen.columns.get("system", "system"))
    reader = ItemReader(gen.data, task.check, gen.limit, on_reject, columns=gen.columns,
                        scratch_dir=paths.output.parent)  # fmt: skip
    runner = Runner(task, policy.executor, paths.part, ledger, cache, rejects, gen.batch_size, bar, on_batch)
    completed = False
    try:
        counts = runner.run(reader)
        completed = True
    finally:
        bar.close()
        stats = policy.executor.stats()
        policy.close()
        ledger.close()
        cache.close()
        if completed:
            rejects.commit()
        else:
            rejects.discard()
    os.replace(paths.part, paths.output)
    reader.report.extra_columns.pop(task.system_column, None)  # read as the system message, not kept
    scan = _scan(paths.output, gen.pairs)
    pfile = pairs_path(paths.output) if gen.pairs else None
    n_pairs = 0
    if pfile is not None:
        items = pair_items(scan.by_prompt)
        atomic_write(pfile, (it.model_dump_json(exclude_none=True) + "\n" for it in items))
        n_pairs = len(items)
    summary = _summary(gen, paths, reader, rejects, counts, stats, scan, pfile, n_pairs, policy.identity)
    summary.wall_s = time.perf_counter() - t0
    atomic_write(paths.summary, summary.to_json())
    return summary


def _summary(gen: GenerateConfig, paths: JobPaths, reader: Any, rejects: Rejects, c: RunCounts, stats: dict[str, Any],
             scan: _Scan, pfile: Path | None, n_pairs: int, identity: str) -> GenerateSummary:  # fmt: skip
    info = PolicyInfo(**c.info.model_dump(), identity=identity) if c.info is not None else scan.policy
    summary = GenerateSummary(
        output=str(paths.output), pairs_file=str(pfile) if pfile else None, rejects=str(paths.rejects),
        round=gen.round, k=gen.k, rows=reader.rows, prompts=reader.items, rejected=rejects.rows, data=reader.report,
        candidates=scan.generated, failed=scan.failed, new=c.new, resumed=c.resumed, cached=c.cached,
        skipped=c.skipped, pairs=n_pairs, new_prompt_tokens=c.prompt_tokens,
        new_completion_tokens=c.completion_tokens, completion_tokens=scan.completion_tokens,
        generate_s=c.judge_s, policy=info, sampling=gen.sampling,
        executor=ExecutorStats.model_validate(stats) if stats else None,
    )  # fmt: skip
    if "judge_wall_s" in stats:  # parallel workers: wall time, not the sum of batch times
        summary.generate_s = float(stats["judge_wall_s"])
    return summary


def read_candidates(path: str | Path) -> list[GeneratedText]:
    """Every record of a candidates file."""
    with Path(path).open("r", encoding="utf-8") as fh:
        return [GeneratedText.model_validate_json(line) for line in fh if line.strip()]
