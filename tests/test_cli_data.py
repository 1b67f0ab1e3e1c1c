"""The command line on datasets with nothing to judge, and on datasets as people have them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from judge.cli import main


@pytest.fixture
def no_model_loads(monkeypatch):
    """Fail the test if any backend is created: a job with nothing to judge must not load a model."""
    import judge.backends._base as base

    def refuse(*args, **kwargs):
        raise AssertionError(f"a backend was created: {args} {kwargs}")

    monkeypatch.setattr(base, "create_backend", refuse)


def _config(tmp_path: Path, data: Path, out: str = "out", **extra) -> Path:
    cfg = tmp_path / f"{out}.yaml"
    lines = [f"data: {data}", f"output: {tmp_path / out / 'judgments.jsonl'}", "judge:", "  backend: vllm"]
    lines += [f"{k}: {json.dumps(v)}" for k, v in extra.items()]
    cfg.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return cfg


def test_a_job_whose_every_row_is_rejected_fails_and_says_why(tmp_path, no_model_loads):
    data = tmp_path / "d.jsonl"
    data.write_text(
        '{"id": "1", "response": "r", "source": "web"}\n{"id": "2", "prompt": "p"\n', encoding="utf-8"
    )
    result = CliRunner().invoke(main, ["judge", "--config", str(_config(tmp_path, data)), "--no-progress"])
    assert result.exit_code == 2, result.output
    rejects = tmp_path / "out" / "judgments.rejects.jsonl"
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: nothing to judge: all 2 rows of {data} were rejected (listed in {rejects}); "
        "first reject, line 1: prompt: Field required"
    )
    assert "items 0   rejected rows 2" in result.stdout  # the summary is still printed
    assert [json.loads(line)["line"] for line in rejects.read_text(encoding="utf-8").splitlines()] == [1, 2]


def test_an_empty_dataset_fails(tmp_path, no_model_loads):
    data = tmp_path / "empty.jsonl"
    data.write_text("\n\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["judge", "--config", str(_config(tmp_path, data)), "--no-progress", "--json"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1] == f"error: nothing to judge: {data} holds no rows"
    assert json.loads(result.stdout)["items"] == 0  # stdout still carries only the JSON


def test_the_column_mapping_reaches_the_job_and_a_bad_one_fails_before_any_file(tmp_path, no_model_loads):
    data = tmp_path / "alpaca.jsonl"
    data.write_text('{"instruction": "Say hi.", "generator": "m"}\n', encoding="utf-8")
    cfg = _config(tmp_path, data, columns={"prompt": "instruction", "response": "output"})
    result = CliRunner().invoke(main, ["judge", "--config", str(cfg), "--no-progress"])
    assert result.exit_code == 2
    assert "first reject, line 1: mapped column(s) missing or null: 'output' (for response)" in result.stderr

    bad = _config(tmp_path, data, "bad", columns={"instructions": "instruction"})
    result = CliRunner().invoke(main, ["judge", "--config", str(bad), "--no-progress"])
    assert result.exit_code == 2
    assert "columns: unknown field(s) ['instructions'] in columns; the fields are ['id', 'prompt'" in result.stderr
    assert not (tmp_path / "bad").exists()


def test_eval_of_a_set_whose_every_row_is_rejected_fails_and_says_why(tmp_path, no_model_loads):
    data = tmp_path / "arena.jsonl"
    data.write_text(
        json.dumps({"question": "q", "answer_a": "x", "answer_b": "y", "winner": "model_a"}) + "\n", encoding="utf-8"
    )
    cols = {"prompt": "question", "response_a": "answer_a", "response_b": "answer_b", "label": "winner"}
    cfg = _config(tmp_path, data, columns=cols, rubrics=["instruction_following"])
    out = tmp_path / "ev"
    result = CliRunner().invoke(main, ["eval", "--config", str(cfg), "--data", str(data), "--output-dir", str(out)])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {data}: no valid labelled row: 1 rows read, 1 rejected (listed in {out / 'rejects.jsonl'}); "
        "first reject, line 1: label 'model_a' is not a, b or tie; map the set's values in the config, "
        "e.g. labels: {model_a: a}"
    )
    assert json.loads((out / "rejects.jsonl").read_text(encoding="utf-8"))["row"]["winner"] == "model_a"
