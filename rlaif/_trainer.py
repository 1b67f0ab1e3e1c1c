"""Build and run one TRL trainer from plain values: the same code in this process and on a Ray worker.

``run_training`` takes a :class:`TrainSpec` (plain data, so it travels to Ray workers), loads the
weights in float32 (bf16 weights make small learning-rate updates vanish in rounding), trains, and
saves the final weights from rank 0. Where it runs is the caller's business: the Ray launcher only
passes a ``prepare`` hook that adds Ray Train's report callback.
"""

from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

__all__ = ["RankReport", "TrainSpec", "run_training"]


@dataclass
class TrainSpec:
    """Everything a worker needs to build the trainer; plain values only."""

    algorithm: str
    model_dir: str
    ref_dir: str | None
    rows: list[dict[str, Any]]
    trl_kwargs: dict[str, Any]
    lora: dict[str, Any] | None = None
    progress: bool = True


@dataclass
class RankReport:
    """What one rank saw: its losses and a digest of its weights before and after training."""

    rank: int
    world_size: int
    steps: int
    losses: list[float]
    metrics: dict[str, float]
    params_before: str
    params_after: str
    wall_s: float
    log: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _params_digest(model: Any) -> str:
    """sha256 over every trainable tensor's bytes: equal digests mean equal weights."""
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        if p.requires_grad:
            h.update(name.encode())
            h.update(p.detach().to("cpu").contiguous().numpy().tobytes())
    return h.hexdigest()


def _progress_callback(losses: list[float], log: list[dict[str, Any]], show: bool) -> Any:
    from transformers import TrainerCallback

    class _Progress(TrainerCallback):
        """Collect every logged loss, and print one line per step on stderr (rank 0 only)."""

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
            logs = dict(logs or {})
            if "loss" not in logs:
                return
            losses.append(float(logs["loss"]))
            log.append({"step": state.global_step, **{k: v for k, v in logs.items() if isinstance(v, (int, float))}})
            if show and state.is_world_process_zero:
                extra = "".join(
                    f" {k}={float(logs[k]):.4g}" for k in ("rewards/margins", "rewards/accuracies", "accuracy") if k in logs
                )
                print(
                    f"train: step {state.global_step}/{state.max_steps} loss={float(logs['loss']):.4f}{extra}",
                    file=sys.stderr,
                    flush=True,
                )

    return _Progress()


def _tokenizer(model_dir: str) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    if tok.pad_token is None:  # batching needs a pad token; the end-of-text token is the usual stand-in
        tok.pad_token = tok.eos_token
    return tok


def _peft_config(lora: dict[str, Any] | None, task: str) -> Any:
    if lora is None:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=lora["r"],
        lora_alpha=lora["alpha"],
        lora_dropout=lora["dropout"],
        target_modules=lora["target_modules"],
        task_type=task,
    )


def build_trainer(spec: TrainSpec, work_dir: str) -> Any:
    """The TRL trainer for ``spec``, writing its intermediate checkpoints under ``work_dir``."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from rlaif._train_config import trl_config_class

    cls = trl_config_class(spec.algorithm)
    args = cls(output_dir=work_dir, use_cpu=not torch.cuda.is_available(), bf16=False, **spec.trl_kwargs)
    tok = _tokenizer(spec.model_dir)
    data = Dataset.from_list(spec.rows)
    if spec.algorithm == "reward":
        from trl import RewardTrainer

        model = AutoModelForSequenceClassification.from_pretrained(spec.model_dir, num_labels=1, dtype=torch.float32)
        model.config.pad_token_id = tok.pad_token_id
        return RewardTrainer(
            model=model, args=args, train_dataset=data, processing_class=tok, peft_config=_peft_config(spec.lora, "SEQ_CLS")
        )
    from trl import DPOTrainer, KTOTrainer

    model = AutoModelForCausalLM.from_pretrained(spec.model_dir, dtype=torch.float32)
    # None: TRL loads the reference from the policy's own directory (model.config._name_or_path), which
    # is the base model's files; a previous round's checkpoint is passed by path and loaded here.
    ref = AutoModelForCausalLM.from_pretrained(spec.ref_dir, dtype=torch.float32) if spec.ref_dir else None
    trainer_cls = DPOTrainer if spec.algorithm == "dpo" else KTOTrainer
    return trainer_cls(
        model=model,
        ref_model=ref,
        args=args,
        train_dataset=data,
        processing_class=tok,
        peft_config=_peft_config(spec.lora, "CAUSAL_LM"),
    )


def _last_checkpoint(work_dir: str) -> str | None:
    """The newest ``checkpoint-N`` TRL saved (with trl.save_steps), to resume an interrupted run from."""
    found = sorted(Path(work_dir).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]) if p.name.split("-")[-1].isdigit() else -1)
    return str(found[-1]) if found else None


def run_training(
    spec: TrainSpec,
    work_dir: str,
    save_to: str,
    prepare: Callable[[Any], Any] | None = None,
) -> RankReport:
    """Train, save the final weights (rank 0) into ``save_to``, and report what this rank saw.

    Args:
        spec: what to train.
        work_dir: TRL's output_dir for intermediate checkpoints; one found there is resumed from.
        save_to: directory that receives the final model and tokenizer (created by rank 0).
        prepare: a hook given the built trainer before training (the Ray launcher's).
    """
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    t0 = time.monotonic()
    trainer = build_trainer(spec, work_dir)
    # Transformers prints each log dict on stdout; judgeloop keeps stdout for results.
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    losses: list[float] = []
    log: list[dict[str, Any]] = []
    trainer.add_callback(_progress_callback(losses, log, spec.progress))
    if prepare is not None:
        trainer = prepare(trainer)
    before = _params_digest(trainer.model)
    out = trainer.train(resume_from_checkpoint=_last_checkpoint(work_dir))
    after = _params_digest(trainer.model)
    if trainer.is_world_process_zero():
        _save(trainer, spec, save_to)
    state = trainer.state
    rank = int(getattr(trainer.args, "process_index", 0))
    world = int(getattr(trainer.args, "world_size", 1))
    metrics = {k: float(v) for k, v in (out.metrics or {}).items() if isinstance(v, (int, float))}
    return RankReport(
        rank=rank,
        world_size=world,
        steps=int(state.global_step),
        losses=losses,
        metrics=metrics,
        params_before=before,
        params_after=after,
        wall_s=time.monotonic() - t0,
        log=log,
    )


def _save(trainer: Any, spec: TrainSpec, save_to: str) -> None:
    """Write plain weights (a merged LoRA unless lora.merge is False) and the tokenizer."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    if spec.lora is not None and spec.lora.get("merge", True):
        model = model.merge_and_unload()
    Path(save_to).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(save_to)
    trainer.processing_class.save_pretrained(save_to)
