"""The judgeloop command line: help, user errors without tracebacks, rubrics, config + flag overrides."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from judge.cli import main
from judge.core._load import load_job_config
from judge.inputs._rubric import RUBRIC_DIR, resolve_rubric


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, cmd in sorted(group.commands.items()):
        yield prefix + (name,), cmd
        if isinstance(cmd, click.Group):
            yield from all_commands(cmd, prefix + (name,))


# Commands that hand every argument, --help included, to another program.
PASSTHROUGH = {("serve",)}


@pytest.mark.parametrize(
    "path", [()] + [p for p, _ in all_commands(main) if p not in PASSTHROUGH], ids=lambda p: " ".join(p) or "main"
)
def test_help_works_for_every_command(path):
    result = invoke(*path, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output
    assert result.output.count("\n") > 2


def test_the_group_lists_its_commands():
    out = invoke("--help").output
    for name in ("judge", "rubrics", "models"):
        assert name in out


# ----------------------------------------------------------------------------------------------
# rubrics


def test_rubrics_list():
    result = invoke("rubrics", "list")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines] == [
        "factual_consistency",
        "harmlessness",
        "helpfulness",
        "honesty",
        "instruction_following",
    ]
    honesty = resolve_rubric("honesty")
    row = next(line for line in lines if line.startswith("honesty"))
    assert "v1" in row and "pointwise" in row and honesty.content_hash[:12] in row
    assert "truthfulness, calibration, transparency" in row


def test_rubrics_show_prints_the_validated_rubric_and_its_prompt(tmp_path):
    import yaml

    result = invoke("rubrics", "show", "instruction_following", "--prompt")
    assert result.exit_code == 0
    rubric = resolve_rubric("instruction_following")
    assert result.output.startswith(f"# {rubric.ref}\n")
    yaml_part = result.output.split("--- system")[0]
    shown = yaml.safe_load(yaml_part)
    assert shown["id"] == "instruction_following" and shown["mode"] == "pairwise"
    # What is shown is the rubric itself: saved and loaded again, it has the same hash.
    copy = tmp_path / "instruction_following.yaml"
    copy.write_text(yaml_part, encoding="utf-8")
    assert resolve_rubric(str(copy)).content_hash == rubric.content_hash
    assert "--- system" in result.output and "--- assistant" in result.output
    assert "<response A>" in result.output and "<response B>" in result.output


def test_rubrics_show_by_path_and_unknown_id(tmp_path):
    result = invoke("rubrics", "show", str(RUBRIC_DIR / "helpfulness.yaml"))
    assert result.exit_code == 0 and "helpfulness@1#" in result.output
    result = invoke("rubrics", "show", "no_such_rubric")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: unknown rubric 'no_such_rubric'")
    assert "Traceback" not in result.output


def test_rubrics_validate(tmp_path):
    good = RUBRIC_DIR / "honesty.yaml"
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text(encoding="utf-8").replace("mode: pointwise", "mode: graded"), encoding="utf-8")
    result = invoke("rubrics", "validate", str(good))
    assert result.exit_code == 0 and result.output.startswith(f"ok  {good}  honesty@1#")
    result = invoke("rubrics", "validate", str(good), str(bad))
    assert result.exit_code == 2
    assert f"ok  {good}" in result.stdout
    assert f"{bad}:3:7: mode:" in result.stderr
    assert "'pointwise', 'pairwise' or 'reference'" in result.stderr and "(given: 'graded')" in result.stderr
    assert "Traceback" not in result.output


def test_rubrics_validate_the_whole_library():
    paths = sorted(str(p) for p in RUBRIC_DIR.glob("*.yaml"))
    result = invoke("rubrics", "validate", *paths)
    assert result.exit_code == 0
    assert result.output.count("ok  ") == len(paths) == 5


# ----------------------------------------------------------------------------------------------
# judge: errors


def test_bad_rubric_prints_a_located_error_without_traceback(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "p", "response": "r"}\n', encoding="utf-8")
    rubric = tmp_path / "mine.yaml"
    rubric.write_text("id: mine\nversion: 1\nmode: pointwise\ndescription: d\ncriteria:\n  - name: c\n    question: q\n    scale: {1: a, 3: b}\n", encoding="utf-8")
    result = invoke("judge", "--data", str(data), "--output", str(tmp_path / "o.jsonl"), "--rubric", str(rubric))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert f"{rubric}:8:12: criteria.0.scale: levels must be consecutive integers, got [1, 3]" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "o.jsonl").exists()


def test_bad_config_prints_a_located_error(tmp_path):
    cfg = tmp_path / "job.yaml"
    cfg.write_text("data: d.jsonl\noutput: o.jsonl\njudge:\n  backend: hf\n  modle: bundled\n", encoding="utf-8")
    result = invoke("judge", "--config", str(cfg))
    assert result.exit_code == 2
    from judge.core._config import JudgeConfig

    allowed = ", ".join(JudgeConfig.model_fields)  # the message lists every field the section takes
    assert f"{cfg}:5:10: judge.modle: unknown field; allowed: {allowed} (given: 'bundled')" in result.stderr
    assert "Traceback" not in result.output

    cfg.write_text("data: d.jsonl\noutput: o.jsonl\nsampling:\n  temperature: 3\n", encoding="utf-8")
    result = invoke("judge", "--config", str(cfg))
    assert result.exit_code == 2
    assert f"{cfg}:4:16: sampling.temperature: Input should be less than or equal to 2 (given: 3)" in result.stderr

    cfg.write_text("data: d.jsonl\noutput: o.jsonl\nbatch_size: 4\nbatch_size: 8\n", encoding="utf-8")
    result = invoke("judge", "--config", str(cfg))
    assert result.exit_code == 2
    assert f"{cfg}:4:1: duplicate key 'batch_size' (first defined on line 3)" in result.stderr

    result = invoke("judge", "--config", str(tmp_path / "absent.yaml"))
    assert result.exit_code == 2 and "absent.yaml: cannot read job config" in result.stderr


def test_missing_dataset_and_required_fields(tmp_path):
    result = invoke("judge", "--data", str(tmp_path / "none.jsonl"), "--output", str(tmp_path / "o.jsonl"))
    assert result.exit_code == 2 and "error: dataset not found" in result.stderr
    result = invoke("judge", "--data", str(tmp_path / "none.jsonl"))
    assert result.exit_code == 2 and "output: Field required" in result.stderr


def test_click_usage_errors_exit_2():
    result = CliRunner().invoke(main, ["judge", "--batch-size", "many"])
    assert result.exit_code == 2 and "Invalid value for '--batch-size'" in result.output
    result = CliRunner().invoke(main, ["no-such-command"])
    assert result.exit_code == 2


# ----------------------------------------------------------------------------------------------
# judge: config + flags


def test_flags_override_the_config(tmp_path):
    cfg = tmp_path / "job.yaml"
    cfg.write_text(
        "data: from_config.jsonl\noutput: from_config.jsonl\nrubrics: [helpfulness]\nbatch_size: 8\n"
        "judge:\n  backend: vllm\n  options: {dtype: bfloat16}\nsampling:\n  max_tokens: 64\n  seed: 1\n",
        encoding="utf-8",
    )
    merged = load_job_config(
        cfg,
        {
            "data": "flag.jsonl",
            "rubrics": ["honesty", "harmlessness"],
            "judge.backend": "hf",
            "batch_size": 2,
            "sampling.max_tokens": 32,
            "limit": None,  # a flag not given leaves the config's value
        },
    )
    assert str(merged.data) == "flag.jsonl" and str(merged.output) == "from_config.jsonl"
    assert merged.rubrics == ["honesty", "harmlessness"]
    assert merged.judge.backend == "hf" and merged.judge.options == {"dtype": "bfloat16"}
    assert merged.batch_size == 2
    assert (merged.sampling.max_tokens, merged.sampling.seed) == (32, 1)
    assert merged.limit is None


def test_flag_errors_name_the_options_not_the_file(tmp_path):
    cfg = tmp_path / "job.yaml"
    cfg.write_text("data: d.jsonl\noutput: o.jsonl\nbatch_size: 8\n", encoding="utf-8")
    result = invoke("judge", "--config", str(cfg), "--batch-size", "0")
    assert result.exit_code == 2
    assert "command-line options: batch_size: Input should be greater than or equal to 1 (given: 0)" in result.stderr


def test_a_config_may_leave_data_and_output_to_flags(tmp_path):
    cfg = tmp_path / "defaults.yaml"
    cfg.write_text("rubrics: [honesty]\njudge:\n  backend: hf\nbatch_size: 4\n", encoding="utf-8")
    merged = load_job_config(cfg, {"data": "d.jsonl", "output": "o.jsonl"})
    assert (str(merged.data), str(merged.output), merged.rubrics) == ("d.jsonl", "o.jsonl", ["honesty"])
    result = invoke("judge", "--config", str(cfg), "--data", str(tmp_path / "none.jsonl"), "--output", "o.jsonl")
    assert result.exit_code == 2 and "dataset not found" in result.stderr  # got past config loading
    result = invoke("judge", "--config", str(cfg))
    assert result.exit_code == 2
    assert "data: Field required" in result.stderr and "output: Field required" in result.stderr


def test_flag_wins_end_to_end_on_a_finished_job(tmp_path):
    """The CLI reruns a finished job named by --output (not the config's): nothing to judge, no model."""
    from judge.backends import ScriptedBackend
    from judge.runner._engine import job_judge_id, run_job

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "none"}', encoding="utf-8")
    data = tmp_path / "d.jsonl"
    data.write_text(
        "".join(json.dumps({"id": f"i{i}", "prompt": f"q{i}", "response": f"r{i}"}) + "\n" for i in range(3)),
        encoding="utf-8",
    )
    finished = tmp_path / "finished" / "judgments.jsonl"
    cfg = tmp_path / "job.yaml"
    cfg.write_text(
        f"data: {data}\noutput: {tmp_path / 'never' / 'judgments.jsonl'}\n"
        f"judge:\n  backend: hf\n  model: {model}\nbatch_size: 2\nscoring:\n  method: json\n",
        encoding="utf-8",
    )
    job = load_job_config(cfg, {"output": str(finished)})
    run_job(
        job,
        backend=lambda: ScriptedBackend(lambda p, s: '{"helpfulness": 3}'),
        judge_id=job_judge_id(job),
        progress=False,
    )
    result = invoke("judge", "--config", str(cfg), "--output", str(finished), "--no-progress", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["output"] == str(finished)
    assert (summary["judgments"], summary["new_judgments"], summary["resumed"]) == (3, 0, 3)
    assert not (tmp_path / "never").exists()

    result = invoke("judge", "--config", str(cfg), "--output", str(finished), "--no-progress")
    assert result.exit_code == 0
    assert "resumed 3" in result.output and "helpfulness" in result.output


def test_models_path(monkeypatch, tmp_path):
    monkeypatch.setenv("JUDGELOOP_CACHE", str(tmp_path))
    result = invoke("models", "path")
    assert result.exit_code == 0
    assert result.output.strip() == str(tmp_path / "models" / "SmolLM2-135M-Instruct")
