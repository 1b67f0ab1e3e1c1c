"""The steps of one loop round, each resumable on its own (see :mod:`rlaif._loop`)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from judge.core._config import GenerateConfig, GenerationSamplingConfig, JobConfig, ModelConfig
from judge.core._io import atomic_write, write_json

__all__ = ["Steps", "greedy_for"]


def greedy_for(cfg: Any) -> GenerationSamplingConfig:
    """How a policy answers evaluation prompts and probes: greedy, one answer."""
    return GenerationSamplingConfig(temperature=0.0, top_p=1.0, max_tokens=cfg.eval.max_tokens, seed=0)


def _accepted(cfg: Any) -> Path:
    a = cfg.audit
    return a.canary_accepted or Path(str(a.store) + ".canary-accepted.json")


class Steps:
    """Runs the steps of a round; holds what lives across rounds (the judge's backend, the audit store)."""

    def __init__(self, cfg: Any, judge_backend: Any | None, progress: bool, until_gate: bool,
                 override: tuple[str, str] | None) -> None:
        self.cfg = cfg
        self.progress = progress
        self.until_gate = until_gate
        self.override = override
        self._judge_backend = judge_backend
        self._owns_judge = False
        self._store: Any | None = None

    # ------------------------------------------------------------------------------------------
    # Shared resources

    def judge_backend(self) -> Any | None:
        """The judge's backend, created once (the judge is the same every round); None on a cluster."""
        if self.cfg.cluster.enabled:
            return None
        if self._judge_backend is None:
            from judge.backends._base import create_backend
            from judge.backends._models import resolve_model

            jc = self.cfg.judge.judge
            model = resolve_model(jc.model) if jc.backend != "openai" else jc.model
            self._judge_backend = create_backend(jc.backend, model=model, **jc.options)
            self._owns_judge = True
        return self._judge_backend

    def store(self) -> Any:
        if self._store is None:
            from judge.audit._store import AuditStore

            self._store = AuditStore(self.cfg.audit.store)
        return self._store

    def take_override(self) -> tuple[str, str]:
        """The person's override, used once: it lets pass what stopped this run, nothing found later."""
        assert self.override is not None
        taken, self.override = self.override, None
        return taken

    def close_store(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def close(self) -> None:
        if self._owns_judge and self._judge_backend is not None:
            self._judge_backend.close()
        self._judge_backend = None
        self.close_store()

    # ------------------------------------------------------------------------------------------
    # Jobs the steps run

    def _generate(self, rd: Any, data: Path, output: Path, model: str, k: int, sampling: GenerationSamplingConfig,
                  limit: int | None, pairs: bool = False) -> dict[str, Any]:
        from rlaif._generate import generate_candidates

        g = self.cfg.generate
        gc = GenerateConfig(
            data=data, columns=dict(self.cfg.columns), output=output, k=k, sampling=sampling, round=rd.r,
            policy=ModelConfig(backend=g.backend, model=model, options=dict(g.options)),
            batch_size=g.batch_size, limit=limit, pairs=pairs,
        )
        if self.cfg.cluster.enabled:
            summary = generate_candidates(gc, cluster=self.cfg.cluster, progress=self.progress)
        else:
            summary = generate_candidates(gc, progress=self.progress)
        return summary.model_dump(mode="json")

    def _judge(self, data: Path, output: Path, rubrics: list[str], orders: str | None = None,
               canary: bool = False) -> dict[str, Any]:
        spec = self.cfg.judge
        a = self.cfg.audit
        audit = {"store": a.store, "canary": a.canary, "canary_accepted": a.canary_accepted} if canary and a.canary else None
        job = JobConfig.model_validate({
            **spec.model_dump(), "rubrics": rubrics, "data": data, "output": output,
            "pairwise_orders": orders or spec.pairwise_orders, "batch_size": self.cfg.generate.batch_size,
            "cluster": self.cfg.cluster.model_dump(), "audit": audit,
        })
        if self.cfg.cluster.enabled:
            from cluster import run_cluster_job

            summary = run_cluster_job(job, progress=self.progress)
        else:
            from judge.runner._engine import run_job

            summary = run_job(job, backend=self.judge_backend(), progress=self.progress)
        return {"judgments": str(output), "items": summary.items, "new": summary.new_judgments,
                "resumed": summary.resumed, "cached": summary.cached, "failed": summary.failed,
                "rejected": summary.rejected, "unscored": summary.unscored, "judge_s": summary.judge_s,
                "canary": summary.canary.model_dump(mode="json") if summary.canary else None}

    # ------------------------------------------------------------------------------------------
    # The steps, in order

    def generate(self, rd: Any, state: Any) -> dict[str, Any]:
        g = self.cfg.generate
        sampling = g.sampling.model_copy(update={"seed": g.sampling.seed + rd.r})
        out = self._generate(rd, self.cfg.prompts, rd.candidates, rd.policy_in, g.k, sampling, self.cfg.limit,
                             pairs=rd.pairwise)
        return {**out, "candidates_file": str(rd.candidates), "policy": rd.policy_in}

    def judge(self, rd: Any, state: Any) -> dict[str, Any]:
        data = rd.candidates.with_name(rd.candidates.stem + ".pairs.jsonl") if rd.pairwise else rd.candidates
        return {**self._judge(data, rd.judgments, list(self.cfg.judge.rubrics), canary=True), "data": str(data)}

    def audit(self, rd: Any, state: Any) -> dict[str, Any]:
        from judge.audit._job import sample_judgments

        a = self.cfg.audit
        self.close_store()  # the draw writes through its own connection
        res, added = sample_judgments(rd.judgments, a.store, a.budget, seed=a.seed + rd.r,
                                      data=state.done(rd.r, "judge")["data"], rubric_refs=list(self.cfg.judge.rubrics),
                                      policy=self.cfg.judge.scoring.pairwise_policy)
        return {"run_id": res.run_id, "samples": len(res.samples), "new": added, "population": res.population,
                "store": str(a.store)}

    def gate(self, rd: Any, state: Any) -> dict[str, Any]:
        from judge.audit._gate import gate, override_scope
        from judge.audit._load import load_judgments
        from judge.audit._records import Override
        from judge.audit._sampling import judgment_scope
        from rlaif._loop import LoopStopped

        a = self.cfg.audit
        run_id = state.done(rd.r, "audit")["run_id"]
        scopes = sorted({judgment_scope(j) for j in load_judgments(rd.judgments)})
        name = f"loop:{self.cfg.run_dir.name}:round-{rd.r}"
        canary_run = state.done(rd.r, "judge").get("canary")
        canary = None
        if canary_run is not None and (canary_run["check"] is not None or canary_run["flagged"]):
            from judge.audit._canary import CanaryCheck

            canary = CanaryCheck.model_validate(canary_run["check"]) if canary_run["check"] else CanaryCheck(
                flagged=True, judge="", metric="", current=None, accepted=None, drop=None, z=None,
                detail=canary_run["detail"])
        kw: dict[str, Any] = dict(min_agreement=a.min_agreement, min_labels=a.min_labels, min_kappa=a.min_kappa,
                                  critical_strata=a.critical_strata, alpha=a.alpha, scopes=scopes, name=name,
                                  runs=[run_id], canary=canary)
        store = self.store()
        decision = gate(store, **kw)
        if not decision.passed and self.override is not None:
            who, why = self.take_override()
            for sc in decision.scopes:
                store.add_override(Override(reviewer=who, reason=why, scope=override_scope(
                    name, sc, a.min_agreement, a.min_labels, a.min_kappa, a.critical_strata)))
            decision = gate(store, **kw)
        shown = None
        while not decision.passed and self.until_gate:
            if decision.reasons != shown:
                shown = decision.reasons
                print(f"loop: round {rd.r}: waiting for reviewers:\n  " + "\n  ".join(decision.reasons),
                      file=sys.stderr, flush=True)
            time.sleep(a.poll_s)
            decision = gate(store, **kw)
        record = decision.model_dump(mode="json")
        atomic_write(rd.dir / "gate.json", decision.model_dump_json(indent=1) + "\n")
        if not decision.passed:
            cmd = "judgeloop loop --config CONFIG"
            raise LoopStopped(
                f"round {rd.r}: the oversight gate did not clear the judge, so this round's feedback is not "
                f"used for training:\n  " + "\n  ".join(decision.reasons)
                + f"\nLabel the round's audit sample (judgeloop audit serve --store {a.store}) and rerun "
                f"`{cmd}` (or add --until-gate to wait); to go on anyway, a person overrides with "
                f"`{cmd} --override-by NAME --reason TEXT` (recorded).",
                rd.r, "gate", decision.reasons,
            )
        if canary_run is not None and not decision.overridden:  # a cleared judge's canary is the new baseline
            atomic_write(Path(canary_run["accepted"] or _accepted(self.cfg)),
                         Path(canary_run["report"]).read_text(encoding="utf-8"))
        return {"passed": True, "overridden": decision.overridden, "gate": name, "scopes": decision.scopes,
                "reasons": decision.reasons, "overrides": record["overrides"]}

    def prefs(self, rd: Any, state: Any) -> dict[str, Any]:
        from rlaif._prefs_build import build_preferences

        data = Path(state.done(rd.r, "judge")["data"])
        report = build_preferences(rd.judgments, data, rd.prefs, self.cfg.prefs, audit_store=self.cfg.audit.store)
        return {"prefs": str(rd.prefs), "pairs": report.pairs, "train": report.train, "test": report.test,
                "excluded": report.excluded, "build_id": report.build_id}

    def mix(self, rd: Any, state: Any) -> dict[str, Any]:
        from rlaif._loop_data import mix_training_rows

        prefs = {r: Path(s["prefs"]["prefs"]) for r, s in state.rounds().items() if "prefs" in s}
        rep = mix_training_rows(rd.r, prefs, rd.mix, algorithm=self.cfg.train["algorithm"],
                                policy=self.cfg.data_policy, human=self.cfg.human_data, seed=self.cfg.prefs.seed + rd.r)
        return {**rep.model_dump(mode="json"), "data": str(rd.mix)}

    def monitor(self, rd: Any, state: Any) -> dict[str, Any]:
        from rlaif._loop_monitor import monitor_step

        return monitor_step(self, rd, state)

    def train(self, rd: Any, state: Any) -> dict[str, Any]:
        from rlaif._train import train
        from rlaif._train_config import TrainConfig

        tc = TrainConfig.model_validate({**self.cfg.train, "model": rd.policy_in, "ref_model": rd.policy_in,
                                         "data": str(rd.mix), "output_dir": str(rd.policy_out)})
        atomic_write(rd.dir / "train_config.json", tc.model_dump_json(indent=1) + "\n")
        res = train(tc, progress=self.progress)
        return res.to_dict()

    def eval(self, rd: Any, state: Any) -> dict[str, Any]:
        from rlaif._loop_eval import eval_pairs, win_rate

        e = self.cfg.eval
        prompts = e.prompts or self.cfg.prompts
        greedy = greedy_for(self.cfg)
        if rd.r == 0:  # written by the monitor step already; generation resumes, so nothing is redone
            self._generate(rd, prompts, rd.eval_old, rd.policy_in, 1, greedy, e.limit)
        self._generate(rd, prompts, rd.eval_new, str(rd.policy_out), 1, greedy, e.limit)
        n = eval_pairs(rd.eval_new, rd.eval_old, rd.eval_pairs)
        if n == 0:
            return {"pairs": 0, "win_rate": None, "ci": None, "note": "no prompt answered by both policies"}
        self._judge(rd.eval_pairs, rd.eval_judgments, [e.rubric], orders="both")
        wr = win_rate(rd.eval_judgments, rd.r, str(rd.policy_out), str(rd.eval_old), e.rubric, reps=e.reps,
                      seed=self.cfg.prefs.seed)
        return wr.model_dump(mode="json")

    def probe(self, rd: Any, state: Any) -> dict[str, Any]:
        from rlaif._loop_probes import probe_changes

        if self.cfg.probes is None:
            return {"skipped": "no probes configured"}
        if not all(_pointwise(r) for r in self.cfg.judge.rubrics):
            return {"skipped": "probes are scored by pointwise rubrics; the loop's judge has a pairwise one"}
        greedy = greedy_for(self.cfg)
        rubrics = list(self.cfg.judge.rubrics)
        old = (rd.dir / "probe_answers_base.jsonl") if rd.r == 0 else rd.cfg.run_dir / f"round-{rd.r - 1}" / "probe_answers.jsonl"
        if rd.r == 0:
            self._generate(rd, self.cfg.probes, old, rd.policy_in, 1, greedy, None)
            self._judge(old, old.with_name("probe_judgments_base.jsonl"), rubrics)
        new = rd.dir / "probe_answers.jsonl"
        self._generate(rd, self.cfg.probes, new, str(rd.policy_out), 1, greedy, None)
        self._judge(new, rd.dir / "probe_judgments.jsonl", rubrics)
        old_j = old.with_name("probe_judgments_base.jsonl" if rd.r == 0 else "probe_judgments.jsonl")
        from rlaif._loop_monitor import per_principle

        result = probe_changes(new, rd.dir / "probe_judgments.jsonl", old, old_j)
        result["principles"] = {"new": per_principle(self.cfg, rd.dir / "probe_judgments.jsonl"),
                                "old": per_principle(self.cfg, old_j)}
        write_json(rd.dir / "probes.json", result)
        return {"probes": len(result["probes"]), "biggest_movers": result["biggest_movers"],
                "mean_change": result["mean_change"], "unscored": result["unscored"], "file": str(rd.dir / "probes.json")}


def _pointwise(ref: str) -> bool:
    from judge.inputs._rubric import resolve_rubric

    return resolve_rubric(ref).mode != "pairwise"
