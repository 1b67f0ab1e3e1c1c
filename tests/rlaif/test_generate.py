"""Candidate generation (`judgeloop generate`): k seeded candidates per prompt on the resumable runner.

The fast tests run the real transformers backend on the tiny Llama built in the session (random
weights: its texts are gibberish, but sampled, seeded and different per seed, which is what these
tests check). The bundled model on vLLM is exercised at the end (marked vllm, model).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from judge.backends._base import backend_identity, fingerprint_model_dir
from judge.cli import main
from judge.core._config import GenerateConfig, JobConfig
from judge.core._load import load_generate_config
from judge.core._errors import ConfigError
from judge.inputs._data import ItemReader
from judge.inputs._rubric import resolve_rubric
from judge.scoring._requests import item_fits
from rlaif import GeneratedText, candidate_seed, generate_candidates, read_candidates
from rlaif_helpers import write_jsonl

PROMPTS = [
    {"id": "colour", "prompt": "Name a colour."},
    {"id": "hello", "prompt": "Say hello.", "system": "Be brief.", "source": "hand-written"},
    {"id": "fruit", "prompt": "Give a fruit."},
]
# Fields that say when and how fast, not what: the only ones two runs may differ in.
TIMING = {"created_at", "latency_s"}


def _cfg(tmp_path: Path, tiny_model: Path, out: str = "run/candidates.jsonl", **kw) -> GenerateConfig:
    data = write_jsonl(tmp_path / "prompts.jsonl", PROMPTS)
    base = dict(
        data=data, output=tmp_path / out, k=3, round=2, batch_size=2,
        policy={"backend": "hf", "model": str(tiny_model), "options": {"dtype": "float32"}},
        sampling={"temperature": 0.8, "top_p": 0.95, "max_tokens": 12, "seed": 7},
    )  # fmt: skip
    return GenerateConfig.model_validate({**base, **kw})


def _content(path: Path) -> list[dict]:
    """The records of a candidates file without their timing fields."""
    return [{k: v for k, v in json.loads(x).items() if k not in TIMING} for x in path.read_text().splitlines()]


def test_k_candidates_per_prompt_carry_their_provenance(tmp_path, tiny_model):
    cfg = _cfg(tmp_path, tiny_model)
    summary = generate_candidates(cfg, progress=False)
    recs = read_candidates(cfg.output)
    assert [r.id for r in recs] == [f"{p['id']}-c{i}" for p in PROMPTS for i in range(3)]
    assert all(r.item_id == r.id and r.prompt_id == r.id.rsplit("-c", 1)[0] for r in recs)
    assert summary.prompts == 3 and summary.candidates == summary.new == 9 and summary.failed == 0
    identity = backend_identity("hf", str(tiny_model), {"dtype": "float32"})
    for r in recs:
        assert r.status == "generated" and r.response is not None and r.synthetic is True and r.round == 2
        assert r.policy.backend == "hf" and r.policy.model == str(tiny_model) and r.policy.dtype == "float32"
        assert r.policy.model_hash == fingerprint_model_dir(tiny_model) and r.policy.identity == identity
        assert (r.sampling.temperature, r.sampling.top_p, r.sampling.max_tokens) == (0.8, 0.95, 12)
        assert r.base_seed == 7 and r.sampling.seed == candidate_seed(7, r.prompt_id, r.candidate)
        assert r.completion_tokens > 0
    seeds = [r.sampling.seed for r in recs]
    assert len(set(seeds)) == len(seeds)  # every candidate has its own seed
    hello = [r for r in recs if r.prompt_id == "hello"]
    assert all(r.system == "Be brief." and r.prompt_meta == {"source": "hand-written"} for r in hello)
    assert all(r.system is None for r in recs if r.prompt_id != "hello")
    # A prompt's k candidates differ (sampled with different seeds).
    for pid in ("colour", "hello", "fruit"):
        assert len({r.response for r in recs if r.prompt_id == pid}) > 1
    written = json.loads((cfg.output.parent / "candidates.summary.json").read_text())
    assert written["candidates"] == 9 and written["policy"]["identity"] == identity


def test_the_same_config_writes_the_same_texts_and_another_seed_others(tmp_path, tiny_model):
    a = _cfg(tmp_path, tiny_model, "a/candidates.jsonl")
    b = _cfg(tmp_path, tiny_model, "b/candidates.jsonl")
    c = _cfg(tmp_path, tiny_model, "c/candidates.jsonl", sampling={"temperature": 0.8, "max_tokens": 12, "seed": 8})
    for cfg in (a, b, c):
        generate_candidates(cfg, progress=False)
    assert b.output.parent != a.output.parent  # a new output: nothing resumed or cached
    assert _content(a.output) == _content(b.output)
    texts_a = [r.response for r in read_candidates(a.output)]
    texts_c = [r.response for r in read_candidates(c.output)]
    assert sum(x != y for x, y in zip(texts_a, texts_c)) >= 7  # another base seed: other samples


def test_a_rerun_of_a_finished_job_recomputes_nothing(tmp_path, tiny_model):
    from judge.runner._task import LocalExecutor

    cfg = _cfg(tmp_path, tiny_model)
    generate_candidates(cfg, progress=False)
    before = cfg.output.read_bytes()

    def no_model():
        raise AssertionError("a finished job must not load the policy")

    again = generate_candidates(cfg, executor=LocalExecutor(no_model), progress=False)
    assert (again.new, again.resumed, again.cached, again.candidates) == (0, 9, 0, 9)
    assert cfg.output.read_bytes() == before
    assert again.policy is not None and again.policy.model == str(tiny_model)  # read back from the output


class Crash(Exception):
    pass


def test_a_crashed_run_resumes_and_ends_with_the_uninterrupted_runs_file(tmp_path, tiny_model):
    whole = _cfg(tmp_path, tiny_model, "whole/candidates.jsonl")
    generate_candidates(whole, progress=False)

    cfg = _cfg(tmp_path, tiny_model, "crashed/candidates.jsonl")

    def crash(n: int) -> None:
        if n == 2:
            raise Crash

    with pytest.raises(Crash):
        generate_candidates(cfg, progress=False, on_batch=crash)
    part = cfg.output.with_name("candidates.jsonl.part")
    assert not cfg.output.exists() and len(part.read_text().splitlines()) == 4  # two batches of two
    resumed = generate_candidates(cfg, progress=False)
    assert (resumed.resumed, resumed.new, resumed.candidates) == (4, 5, 9)
    assert _content(cfg.output) == _content(whole.output)


def test_the_candidates_file_is_a_pointwise_dataset_whose_items_carry_prompt_id_and_round(tmp_path, tiny_model):
    cfg = _cfg(tmp_path, tiny_model)
    generate_candidates(cfg, progress=False)
    rubric = resolve_rubric("helpfulness")
    rejected: list = []
    reader = ItemReader(cfg.output, lambda it: item_fits(rubric, it), on_reject=lambda *r: rejected.append(r))
    items = list(reader)
    assert not rejected and len(items) == 9
    recs = {r.id: r for r in read_candidates(cfg.output)}
    for it in items:
        rec = recs[it.id]
        assert it.prompt == rec.prompt and it.response == rec.response
        assert it.meta["prompt_id"] == rec.prompt_id and it.meta["round"] == 2 and it.meta["synthetic"] is True
        assert it.meta["candidate"] == rec.candidate and it.meta["policy"]["model_hash"] == rec.policy.model_hash
        assert it.meta["sampling"]["seed"] == rec.sampling.seed


def test_a_failed_generation_is_written_failed_not_judgeable_and_retried(tmp_path, tiny_model):
    from judge.backends import ScriptedBackend, create_backend

    hf = create_backend("hf", model=str(tiny_model), dtype="float32")
    real = lambda prompt, params: hf.generate([prompt], [params])[0]  # noqa: E731
    fails = lambda prompt, params: "backend" if prompt[-1].content == "Give a fruit." else None  # noqa: E731
    cfg = _cfg(tmp_path, tiny_model)
    first = generate_candidates(cfg, backend=ScriptedBackend(real, model="tiny", fail=fails), progress=False)
    assert (first.candidates, first.failed) == (6, 3)
    failed = [r for r in read_candidates(cfg.output) if r.status == "failed"]
    assert [r.id for r in failed] == ["fruit-c0", "fruit-c1", "fruit-c2"]
    assert all(r.response is None and "scripted failure" in r.error and r.error_kind == "backend" for r in failed)

    rubric = resolve_rubric("helpfulness")
    rejected: list = []
    items = list(ItemReader(cfg.output, lambda it: item_fits(rubric, it), on_reject=lambda *r: rejected.append(r)))
    assert sorted(it.id for it in items) == sorted(f"{p}-c{i}" for p in ("colour", "hello") for i in range(3))
    assert [r[1]["id"] for r in rejected] == ["fruit-c0", "fruit-c1", "fruit-c2"]  # rejects, not scored items

    second = generate_candidates(cfg, backend=ScriptedBackend(real, model="tiny"), progress=False)
    assert (second.new, second.resumed, second.candidates, second.failed) == (3, 6, 9, 0)
    ids = [r.id for r in read_candidates(cfg.output)]
    assert len(ids) == len(set(ids)) == 9  # the failed lines were replaced, not kept beside
    hf.close()


def test_a_prompt_too_long_for_the_policy_is_a_reject(tmp_path, tiny_model):
    rows = PROMPTS[:1] + [{"id": "long", "prompt": "Name a colour. " * 200}]
    cfg = _cfg(tmp_path, tiny_model, data=write_jsonl(tmp_path / "long.jsonl", rows))
    summary = generate_candidates(cfg, progress=False)
    assert (summary.candidates, summary.skipped) == (3, 3)
    rejects = [json.loads(x) for x in cfg.output.with_name("candidates.rejects.jsonl").read_text().splitlines()]
    assert sorted(r["item_id"] for r in rejects) == ["long-c0", "long-c1", "long-c2"]
    assert all("too long" in r["error"] for r in rejects)


def test_pairs_file_holds_every_pair_of_a_prompts_candidates(tmp_path, tiny_model):
    cfg = _cfg(tmp_path, tiny_model, pairs=True)
    summary = generate_candidates(cfg, progress=False)
    pfile = cfg.output.with_name("candidates.pairs.jsonl")
    assert summary.pairs_file == str(pfile) and summary.pairs == 9  # 3 prompts x C(3, 2)
    pairwise = resolve_rubric("instruction_following")
    assert pairwise.mode == "pairwise"
    items = list(ItemReader(pfile, lambda it: item_fits(pairwise, it)))
    assert len(items) == 9
    recs = {r.id: r for r in read_candidates(cfg.output)}
    for it in items:
        a, b = recs[it.meta["candidate_a"]], recs[it.meta["candidate_b"]]
        assert (it.response_a, it.response_b, it.prompt) == (a.response, b.response, a.prompt)
        assert a.prompt_id == b.prompt_id == it.meta["prompt_id"] and a.candidate < b.candidate
        assert it.meta["round"] == 2 and it.meta["keys"] == [a.key, b.key]


# ----------------------------------------------------------------------------------------------
# Config errors


def _round_yaml(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "round.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_a_round_config_without_a_generate_section_is_an_error(tmp_path):
    path = _round_yaml(tmp_path, "data: c.jsonl\noutput: j.jsonl\n")
    with pytest.raises(ConfigError, match=r"round\.yaml: no `generate:` section"):
        load_generate_config(path)
    job = JobConfig.model_validate({"data": "c.jsonl", "output": "j.jsonl"})
    with pytest.raises(ConfigError, match="no `generate:` section"):
        generate_candidates(job, progress=False)


def test_k_below_one_names_the_field_and_the_value(tmp_path):
    path = _round_yaml(tmp_path, "data: c.jsonl\noutput: j.jsonl\ngenerate:\n  data: p.jsonl\n  k: 0\n")
    with pytest.raises(ConfigError) as err:
        load_generate_config(path)
    assert "round.yaml:5:" in str(err.value) and "generate.k" in str(err.value) and "given: 0" in str(err.value)


def test_greedy_sampling_with_several_candidates_is_an_error(tmp_path):
    text = "data: c.jsonl\noutput: j.jsonl\ngenerate:\n  data: p.jsonl\n  k: 3\n  sampling:\n    temperature: 0\n"
    with pytest.raises(ConfigError) as err:
        load_generate_config(_round_yaml(tmp_path, text))
    msg = str(err.value)
    assert "round.yaml:7:" in msg and "generate.sampling.temperature" in msg and "k=3" in msg
    one = text.replace("k: 3", "k: 1")  # one greedy candidate per prompt is a valid choice
    gen, _ = load_generate_config(_round_yaml(tmp_path, one))
    assert gen.k == 1 and gen.sampling.temperature == 0


def test_the_output_defaults_to_the_judges_data_and_a_generate_only_file_needs_one(tmp_path):
    path = _round_yaml(tmp_path, "data: runs/c.jsonl\noutput: runs/j.jsonl\ngenerate:\n  data: p.jsonl\n")
    gen, cluster = load_generate_config(path)
    assert gen.output == Path("runs/c.jsonl") and cluster.enabled is False
    only = _round_yaml(tmp_path, "generate:\n  data: p.jsonl\n")
    with pytest.raises(ConfigError, match="generate.output: not set"):
        load_generate_config(only)
    gen, _ = load_generate_config(only, {"generate.output": "x.jsonl"})
    assert gen.output == Path("x.jsonl")


def test_the_shipped_round_config_serves_generate_and_judge():
    from judge.core._load import load_job_config

    root = Path(__file__).resolve().parents[2]
    gen, _ = load_generate_config(root / "configs/rlaif_round.yaml")
    job = load_job_config(root / "configs/rlaif_round.yaml")
    assert gen.output == job.data and gen.k > 1 and gen.sampling.temperature > 0 and gen.policy.model == "bundled"
    prompts = [json.loads(x) for x in (root / gen.data).read_text().splitlines()]
    assert len(prompts) >= 16 and len({p["id"] for p in prompts}) == len(prompts)


# ----------------------------------------------------------------------------------------------
# The command line


def test_cli_generate_writes_the_files_and_prints_the_summary(tmp_path, tiny_model):
    data = write_jsonl(tmp_path / "prompts.jsonl", PROMPTS)
    out = tmp_path / "run" / "candidates.jsonl"
    cfg = _round_yaml(
        tmp_path,
        f"data: {out}\noutput: {tmp_path / 'run' / 'judgments.jsonl'}\n"
        f"generate:\n  data: {data}\n  k: 4\n  policy:\n    backend: hf\n    model: {tiny_model}\n"
        "  sampling:\n    max_tokens: 8\n",
    )
    res = CliRunner().invoke(main, ["generate", "--config", str(cfg), "--set", "generate.k=2", "--set",
                                    "generate.round=1", "--set", "generate.pairs=true", "--no-progress", "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert (summary["k"], summary["round"], summary["candidates"], summary["pairs"]) == (2, 1, 6, 3)
    recs = [GeneratedText.model_validate_json(x) for x in out.read_text().splitlines()]
    assert [r.id for r in recs] == [f"{p['id']}-c{i}" for p in PROMPTS for i in range(2)]
    assert all(r.round == 1 for r in recs)
    assert out.with_name("candidates.pairs.jsonl").is_file() and out.with_name("candidates.summary.json").is_file()

    again = CliRunner().invoke(main, ["generate", "--config", str(cfg), "--set", "generate.k=2",
                                      "--set", "generate.round=1", "--no-progress"])  # fmt: skip
    assert again.exit_code == 0, again.output
    assert "candidates 6 (new 0, resumed 6" in again.stdout and "round 1, k 2" in again.stdout


def test_cli_generate_reports_config_errors_without_a_traceback(tmp_path):
    cfg = _round_yaml(tmp_path, "data: c.jsonl\noutput: j.jsonl\n")
    res = CliRunner().invoke(main, ["generate", "--config", str(cfg)])
    assert res.exit_code == 2 and "no `generate:` section" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(main, ["generate", "--config", str(cfg), "--set", "generate.k"])
    assert res.exit_code == 2 and "expected KEY=VALUE" in res.output


# ----------------------------------------------------------------------------------------------
# The bundled model on vLLM


@pytest.mark.vllm
@pytest.mark.model
def test_vllm_policy_samples_different_candidates_and_a_seed_reproduces_them(
    tmp_path, vllm_float32, vllm_backend, model_dir
):
    from judge.core._config import JobConfig
    from judge.runner._engine import run_job

    rows = [
        {"id": "sky", "prompt": "Describe the sky in one sentence."},
        {"id": "tea", "prompt": "How do I make a cup of tea?"},
        {"id": "pet", "prompt": "Suggest a name for a pet cat."},
    ]
    data = write_jsonl(tmp_path / "prompts.jsonl", rows)

    def cfg(out: str) -> GenerateConfig:
        return GenerateConfig(
            data=data, output=tmp_path / out / "candidates.jsonl", k=3, policy={"backend": "vllm", "model": model_dir},
            sampling={"temperature": 0.8, "max_tokens": 32, "seed": 3},
        )  # fmt: skip

    # A seed reproduces a text in float32, cold cache or warm. In bf16, on CPUs with AMX tiles, a
    # logit can read one bf16 step apart from run to run, and a sampled token moves with it.
    vllm_float32.llm.reset_prefix_cache()
    first = generate_candidates(cfg("a"), backend=vllm_float32, progress=False)
    second = generate_candidates(cfg("b"), backend=vllm_float32, progress=False)
    assert first.candidates == second.candidates == 9 and first.policy.backend == "vllm"
    assert first.policy.dtype == "float32"
    a, b = read_candidates(cfg("a").output), read_candidates(cfg("b").output)
    for pid in ("sky", "tea", "pet"):
        texts = [r.response for r in a if r.prompt_id == pid]
        assert len(set(texts)) > 1, texts  # sampled: a prompt's candidates are not all the same
    assert [r.response for r in a] == [r.response for r in b]  # the same seeds, the same texts
    assert a[0].policy.model_hash == fingerprint_model_dir(model_dir)

    # The candidates file is the judge's dataset as it is: every candidate judged, prompt ids kept.
    job = JobConfig.model_validate(
        {"data": cfg("a").output, "output": tmp_path / "a" / "judgments.jsonl", "rubrics": ["helpfulness"],
         "judge": {"backend": "vllm", "model": model_dir}, "sampling": {"max_tokens": 64}}
    )  # fmt: skip
    judged = run_job(job, backend=vllm_backend, progress=False)
    assert judged.items == 9 and judged.rejected == 0
    ids = {json.loads(x)["item_id"] for x in job.output.read_text().splitlines()}
    assert ids == {r.id for r in a}
