"""The same DPO run on Ray Train's TorchTrainer with two CPU workers (gloo)."""

from __future__ import annotations

import json

import pytest

from rlaif import PROVENANCE, RaySettings, TrainConfig, train
from rlaif_helpers import changed_tensors

pytestmark = pytest.mark.ray


def test_dpo_on_two_ray_train_workers(tiny_model, prefs_file, tmp_path, capsys):
    out = tmp_path / "ray"
    cfg = TrainConfig(
        algorithm="dpo",
        model=str(tiny_model),
        data=str(prefs_file),
        output_dir=str(out),
        learning_rate=1e-3,
        max_steps=3,
        batch_size=2,  # per worker: 2 ranks x 2 rows per step
        max_length=64,
        ray=RaySettings(workers=2, use_gpu=False, cpus_per_worker=1),
    )
    r = train(cfg)
    assert [k.rank for k in r.ranks] == [0, 1] and {k.world_size for k in r.ranks} == {2}
    for k in r.ranks:
        assert k.steps == 3 and len(k.losses) == 3
        assert k.losses[-1] < k.losses[0]
        assert k.params_after != k.params_before
    # Data-parallel training keeps the ranks' weights identical: gradients were all-reduced.
    assert r.ranks[0].params_after == r.ranks[1].params_after
    changed, total = changed_tensors(tiny_model, out)
    assert changed == total
    prov = json.loads((out / PROVENANCE).read_text())
    assert prov["workers"] == 2 and prov["config"]["ray"]["workers"] == 2 and "ray" in prov["versions"]
    assert not list(tmp_path.glob(".ray*"))
    err = capsys.readouterr().err
    assert "train: rank 0/2: 3 steps" in err and "train: rank 1/2: 3 steps" in err
