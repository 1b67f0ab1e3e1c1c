"""Training config and data errors: each names the file, line, field and value, before any model loads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from judge.cli import main
from judge.core._errors import ConfigError, DataError
from rlaif import load_train_config, load_training_rows
from rlaif_helpers import kto_rows, preference_rows, write_jsonl

BASE = """\
algorithm: dpo
model: {model}
data: {data}
output_dir: {out}
learning_rate: 0.001
"""


@pytest.fixture
def no_model_load(monkeypatch):
    """Any attempt to build a trainer (and so load weights) fails the test."""
    import rlaif._trainer

    def boom(*a, **k):
        raise AssertionError("a model was loaded before the config was checked")

    monkeypatch.setattr(rlaif._trainer, "build_trainer", boom)


def _write(tmp_path: Path, extra: str, model: str = "bundled") -> Path:
    p = tmp_path / "train.yaml"
    p.write_text(BASE.format(model=model, data=tmp_path / "d.jsonl", out=tmp_path / "out") + extra, encoding="utf-8")
    return p


def test_unknown_trl_key_names_key_line_and_allowed(tmp_path, no_model_load):
    p = _write(tmp_path, "trl:\n  warmup_stesp: 3\n")
    with pytest.raises(ConfigError) as e:
        load_train_config(p)
    msg = str(e.value)
    assert f"{p}:7:17: trl.warmup_stesp: unknown DPOConfig argument 'warmup_stesp'" in msg
    assert "allowed:" in msg and "warmup_steps" in msg and "loss_type" in msg


def test_unknown_trl_key_of_the_other_algorithm_is_an_error(tmp_path):
    # desirable_weight is KTO's: a DPO config does not take it, a KTO config does.
    p = _write(tmp_path, "trl:\n  desirable_weight: 2.0\n")
    with pytest.raises(ConfigError, match="unknown DPOConfig argument 'desirable_weight'"):
        load_train_config(p)
    p.write_text(p.read_text().replace("algorithm: dpo", "algorithm: kto"))
    assert load_train_config(p).trl == {"desirable_weight": 2.0}


def test_bad_trl_value_names_field_and_value(tmp_path):
    p = _write(tmp_path, "trl:\n  warmup_steps: many\n")
    with pytest.raises(ConfigError) as e:
        load_train_config(p)
    assert f"{p}:7:17: trl.warmup_steps:" in str(e.value) and "(given: 'many')" in str(e.value)


def test_managed_trl_key_points_at_our_field(tmp_path):
    p = _write(tmp_path, "trl:\n  learning_rate: 0.1\n  bf16: true\n")
    with pytest.raises(ConfigError, match=r"trl.learning_rate: .*set the top-level field 'learning_rate'"):
        load_train_config(p)


def test_bad_top_level_value_is_located(tmp_path):
    p = _write(tmp_path, "batch_size: 0\n")
    with pytest.raises(ConfigError) as e:
        load_train_config(p)
    assert f"{p}:6:13: batch_size: Input should be greater than or equal to 1 (given: 0)" in str(e.value)


def test_unknown_top_level_key_lists_allowed(tmp_path):
    p = _write(tmp_path, "lerning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"lerning_rate: unknown field; allowed: algorithm, model, ref_model"):
        load_train_config(p)


def test_reward_takes_no_reference(tmp_path):
    p = _write(tmp_path, "ref_model: /x\n")
    p.write_text(p.read_text().replace("algorithm: dpo", "algorithm: reward"))
    with pytest.raises(ConfigError, match=r":6:\d+: ref_model: a reward model has no reference model"):
        load_train_config(p)


def test_flags_override_the_file(tmp_path):
    p = _write(tmp_path, "max_steps: 10\n")
    cfg = load_train_config(p, {"max_steps": 2, "ray.workers": 2, "output_dir": str(tmp_path / "o2")})
    assert cfg.max_steps == 2 and cfg.ray is not None and cfg.ray.workers == 2 and cfg.output_dir.endswith("o2")
    assert cfg.learning_rate == 0.001  # from the file


def test_cli_config_error_exits_2_before_any_model_loads(tmp_path, no_model_load):
    p = _write(tmp_path, "trl:\n  not_a_trl_option: 1\n")
    r = CliRunner().invoke(main, ["train", "dpo", "--config", str(p)])
    assert r.exit_code == 2, r.output
    assert "trl.not_a_trl_option: unknown DPOConfig argument" in r.output


def test_cli_algorithm_must_match_the_config(tmp_path, no_model_load):
    p = _write(tmp_path, "")
    r = CliRunner().invoke(main, ["train", "kto", "--config", str(p)])
    assert r.exit_code == 2 and "the config is for 'dpo', but the command is `train kto`" in r.output


def test_cli_bad_data_row_exits_2_naming_row(tmp_path, tiny_model, no_model_load):
    rows = preference_rows()
    rows[2] = {**rows[2], "chosen": "just a string"}
    write_jsonl(tmp_path / "d.jsonl", rows)
    p = _write(tmp_path, "", model=str(tiny_model))
    r = CliRunner().invoke(main, ["train", "dpo", "--config", str(p)])
    assert r.exit_code == 2
    assert f"{tmp_path / 'd.jsonl'}: row 3: chosen: must be a non-empty list of {{role, content}} messages" in r.output


# ----------------------------------------------------------------------------------------------
# data


def test_rows_missing_a_column_name_the_format(tmp_path):
    f = write_jsonl(tmp_path / "k.jsonl", [{"prompt": [{"role": "user", "content": "x"}], "completion": []}])
    with pytest.raises(DataError, match=r"row 1: missing column\(s\) label; kto rows need prompt, completion, label"):
        load_training_rows(f, "kto")


def test_bad_role_and_label(tmp_path):
    rows = kto_rows()
    rows[1]["prompt"] = [{"role": "judge", "content": "x"}]
    with pytest.raises(DataError, match=r"row 2: prompt\[0\].role: must be one of system, user, assistant, tool, got 'judge'"):
        load_training_rows(write_jsonl(tmp_path / "a.jsonl", rows), "kto")
    rows = kto_rows()
    rows[0]["label"] = "yes"
    with pytest.raises(DataError, match="row 1: label must be true or false, got 'yes'"):
        load_training_rows(write_jsonl(tmp_path / "b.jsonl", rows), "kto")


def test_jsonl_parquet_and_datasets_dir_give_the_same_rows_and_fingerprint(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset, DatasetDict

    rows = [{**r, "pair_id": f"p{i}"} for i, r in enumerate(preference_rows())]  # extra columns are kept out
    jl = load_training_rows(write_jsonl(tmp_path / "j" / "train.jsonl", rows), "dpo")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "train.parquet")
    from_pq = load_training_rows(tmp_path, "dpo")  # a directory holding train.parquet
    DatasetDict({"train": Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "hf"))
    (tmp_path / "hf" / "README.md").write_text("# prefs\nbuilt from round 0\n")
    from_hf = load_training_rows(tmp_path / "hf", "dpo")
    assert jl.rows == from_pq.rows == from_hf.rows and "pair_id" not in jl.rows[0]
    assert jl.fingerprint == from_pq.fingerprint == from_hf.fingerprint
    assert list(from_hf.cards) == [str(tmp_path / "hf" / "README.md")]
    other = load_training_rows(write_jsonl(tmp_path / "r.jsonl", rows[::-1]), "dpo")
    assert other.fingerprint != jl.fingerprint  # order is part of what was trained on


def test_missing_split_lists_the_splits(tmp_path):
    from datasets import Dataset, DatasetDict

    DatasetDict({"test": Dataset.from_list(preference_rows())}).save_to_disk(str(tmp_path / "hf"))
    with pytest.raises(DataError, match="no split 'train'; the dataset has test"):
        load_training_rows(tmp_path / "hf", "dpo")


def test_import_rlaif_is_light():
    code = "import sys, rlaif; print(json.dumps([m in sys.modules for m in ('torch', 'trl', 'transformers', 'ray')]))"
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [False, False, False, False]


def test_public_api_is_exported():
    import rlaif

    for name in rlaif.__all__:
        assert getattr(rlaif, name) is not None
    from cluster import run_ray_training  # noqa: F401
