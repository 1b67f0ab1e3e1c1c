"""DPO on the bundled SmolLM2-135M model for two steps: the real model trains in float32 on CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlaif import PROVENANCE, LoraSettings, TrainConfig, train
from rlaif_helpers import preference_rows, write_jsonl

pytestmark = [pytest.mark.slow, pytest.mark.model]


def test_dpo_on_the_bundled_model(tmp_path):
    from judge.backends._models import bundled_model_dir

    model = Path(bundled_model_dir())
    if not (model / "config.json").is_file():
        pytest.skip("the bundled model is not prepared (judgeloop models prepare)")
    data = write_jsonl(tmp_path / "prefs.jsonl", preference_rows()[:4])
    out = tmp_path / "policy"
    # LoRA keeps the run at ~1.4 GB (full fine-tuning of 135M takes 3.4 GB); merged before saving.
    cfg = TrainConfig(
        algorithm="dpo", model="bundled", data=str(data), output_dir=str(out),
        learning_rate=1e-3, max_steps=2, batch_size=2, max_length=128, lora=LoraSettings(r=8, alpha=16),
    )
    r = train(cfg)
    assert r.steps == 2 and r.loss_first == pytest.approx(0.6931, abs=2e-3)
    assert r.loss_last != r.loss_first
    assert r.ranks[0].params_after != r.ranks[0].params_before
    from rlaif_helpers import changed_tensors

    changed, total = changed_tensors(model, out)
    assert 0 < changed < total  # the merged LoRA layers moved; embeddings and norms did not
    prov = json.loads((out / PROVENANCE).read_text())
    assert prov["base_model"]["path"] == str(model.resolve())
    assert prov["versions"]["transformers"]
