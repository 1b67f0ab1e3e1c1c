"""DPO, reward-model and KTO training on a tiny Llama built in the test: the loss moves, weights change.

Each run is a handful of optimiser steps at a high learning rate (1e-3), so the tiny model's loss
leaves its starting value (0.693 for DPO and the reward model, 0.5 for KTO) within the run.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from judge.cli import main
from judge.core._errors import ConfigError
from rlaif import PROVENANCE, LoraSettings, RewardModel, TrainConfig, train
from rlaif_helpers import changed_tensors, preference_rows


def _cfg(tiny_model, data, out, algorithm="dpo", **kw) -> TrainConfig:
    base = dict(learning_rate=1e-3, max_steps=4, batch_size=4, max_length=64, seed=0)
    return TrainConfig(algorithm=algorithm, model=str(tiny_model), data=str(data), output_dir=str(out), **{**base, **kw})


def test_dpo_trains_saves_provenance_and_a_rerun_does_nothing(tiny_model, prefs_file, tmp_path, capsys):
    from judge.backends._base import fingerprint_model_dir
    from rlaif import load_training_rows

    cfg = _cfg(tiny_model, prefs_file, tmp_path / "round0")
    r = train(cfg)
    assert r.steps == 4 and len(r.ranks[0].losses) == 4
    assert r.loss_first == pytest.approx(0.6931, abs=1e-3)  # policy == reference at the start
    assert r.loss_last < r.loss_first - 0.02
    assert r.ranks[0].params_before != r.ranks[0].params_after
    changed, total = changed_tensors(tiny_model, tmp_path / "round0")
    assert changed == total  # full fine-tuning: every tensor moved
    err = capsys.readouterr().err
    assert "train: step 1/4 loss=0.6931" in err and "train: step 4/4" in err

    prov = json.loads((tmp_path / "round0" / PROVENANCE).read_text())
    assert prov["base_model"]["fingerprint"] == fingerprint_model_dir(tiny_model)
    assert prov["dataset"]["fingerprint"] == load_training_rows(prefs_file, "dpo").fingerprint
    assert prov["dataset"]["rows"] == 8 and prov["seed"] == 0 and prov["steps"] == 4
    assert prov["versions"]["trl"] == "1.16.0" and prov["loss_last"] == pytest.approx(r.loss_last)
    assert prov["trl_config"]["learning_rate"] == 1e-3 and prov["config"]["algorithm"] == "dpo"
    assert prov["started_at"] <= prov["finished_at"]
    assert not list(tmp_path.glob(".round0*"))  # no temporary or work directory is left behind

    mtime = (tmp_path / "round0" / PROVENANCE).stat().st_mtime_ns
    again = train(cfg)
    assert again.skipped and again.steps == 4
    assert "already holds this run" in capsys.readouterr().err
    assert (tmp_path / "round0" / PROVENANCE).stat().st_mtime_ns == mtime

    # Another config into the same directory is refused, not silently mixed.
    with pytest.raises(ConfigError, match="holds a checkpoint trained from another config"):
        train(cfg.model_copy(update={"max_steps": 2}))

    # The next round: the previous checkpoint by path, as policy and reference.
    nxt = cfg.model_copy(update={"model": str(tmp_path / "round0"), "ref_model": str(tmp_path / "round0"), "output_dir": str(tmp_path / "round1"), "max_steps": 2})
    r1 = train(nxt)
    assert r1.loss_first == pytest.approx(0.6931, abs=1e-3)  # the reference is round 0, not the base model
    prov1 = json.loads((tmp_path / "round1" / PROVENANCE).read_text())
    assert prov1["ref_model"]["fingerprint"] == fingerprint_model_dir(tmp_path / "round0")
    assert prov1["base_model"]["path"] == str((tmp_path / "round0").resolve())
    # ref_model is what DPO measures against: round 0's policy against the untrained base model
    # already prefers the chosen answers, so the first loss is below log 2.
    vs_base = train(nxt.model_copy(update={"ref_model": str(tiny_model), "output_dir": str(tmp_path / "vs_base"), "max_steps": 1}))
    assert vs_base.loss_first < 0.6931 - 0.02


def test_reward_model_trains_and_scores_chosen_above_rejected(tiny_model, prefs_file, tmp_path):
    out = tmp_path / "rm"
    r = train(_cfg(tiny_model, prefs_file, out, algorithm="reward", max_steps=8))
    assert r.loss_last < r.loss_first
    changed, total = changed_tensors(tiny_model, out)  # the backbone moved
    assert changed == total
    rm = RewardModel(out)
    rows = preference_rows()
    prompts = [row["prompt"] for row in rows]
    chosen = rm.score(prompts, [row["chosen"] for row in rows])
    rejected = rm(prompts=prompts, completions=[row["rejected"] for row in rows])  # TRL's reward-function call
    wins = sum(c > j for c, j in zip(chosen, rejected))
    assert wins >= 6, (chosen, rejected)  # trained on these rows: most pairs are ranked the judge's way


def test_kto_trains(tiny_model, kto_file, tmp_path):
    r = train(_cfg(tiny_model, kto_file, tmp_path / "kto", algorithm="kto", max_steps=6))
    assert r.loss_first == pytest.approx(0.5, abs=1e-3)
    assert r.loss_last < r.loss_first - 1e-3
    changed, total = changed_tensors(tiny_model, tmp_path / "kto")
    assert changed == total


def test_dpo_with_lora_saves_merged_weights(tiny_model, prefs_file, tmp_path):
    out = tmp_path / "lora"
    r = train(_cfg(tiny_model, prefs_file, out, lora=LoraSettings(r=4, alpha=8), learning_rate=5e-3))
    assert r.loss_last < r.loss_first
    assert not (out / "adapter_config.json").exists()  # merged: a plain model directory
    changed, total = changed_tensors(tiny_model, out)
    # LoRA on every linear layer changes those weights once merged; embeddings and norms stay.
    assert 0 < changed < total


def test_cli_train_dpo_with_config_and_flags(tiny_model, prefs_file, tmp_path):
    cfg = tmp_path / "dpo.yaml"
    cfg.write_text(
        f"algorithm: dpo\nmodel: {tiny_model}\ndata: {prefs_file}\noutput_dir: {tmp_path / 'unused'}\n"
        "learning_rate: 0.001\nbatch_size: 4\nmax_length: 64\nmax_steps: 10\n"
    )
    out = tmp_path / "cli"
    r = CliRunner().invoke(main, ["train", "dpo", "--config", str(cfg), "--max-steps", "2", "--output-dir", str(out), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["steps"] == 2 and summary["output_dir"] == str(out) and not summary["skipped"]
    assert (out / PROVENANCE).is_file() and not (tmp_path / "unused").exists()


def test_an_interrupted_run_resumes_from_its_last_intermediate_checkpoint(tiny_model, prefs_file, tmp_path):
    from transformers import TrainerCallback

    from rlaif import plan_training, run_training

    cfg = _cfg(tiny_model, prefs_file, tmp_path / "out", trl={"save_strategy": "steps", "save_steps": 2})
    spec = plan_training(cfg).spec(progress=False)

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 3:
                raise RuntimeError("killed at step 3")

    def crash_at_3(trainer):
        trainer.add_callback(Crash())
        return trainer

    work = str(tmp_path / "work")
    with pytest.raises(RuntimeError, match="killed at step 3"):
        run_training(spec, work, str(tmp_path / "unused"), prepare=crash_at_3)
    assert (tmp_path / "work" / "checkpoint-2").is_dir()
    resumed = run_training(spec, work, str(tmp_path / "final"))
    # Steps 1-2 came from checkpoint-2: only steps 3 and 4 ran (and logged a loss) again.
    assert resumed.steps == 4 and [e["step"] for e in resumed.log] == [3, 4]
