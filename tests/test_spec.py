"""The model spec: loading with located errors, rubric citations, the coverage check and its CLI,
and scores broken down by principle."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from judge.cli import main
from judge.core._records import JudgeInfo, Judgment, RubricRef, SamplingParams
from judge.inputs import (
    ModelSpec,
    Rubric,
    SpecError,
    check_spec,
    list_rubrics,
    load_rubric,
    load_spec,
    principle_scores,
)

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_SPEC = ROOT / "configs" / "spec.yaml"

SPEC = """\
version: 1
description: A tiny spec for tests.
principles:
  - id: helpful.answer
    kind: should
    text: Answer the question asked.
  - id: honesty.no-fabrication
    kind: should_not
    text: Invent facts.
  - id: harmless.no-harm
    kind: should_not
    text: Help anyone cause harm.
"""

RUBRIC = """\
id: tiny
version: 1
mode: pointwise
description: A tiny rubric for tests.
principles: [helpful.answer]
criteria:
  - name: quality
    question: Is it good?
    principles: [helpful.answer, honesty.no-fabrication]
    scale: {1: Bad., 2: Fair., 3: Good.}
  - name: truth
    question: Is it true?
    weight: 3
    principles: [honesty.no-fabrication, honesty.made-up]
    scale: {1: False., 5: True., 2: Mostly false., 3: Mixed., 4: Mostly true.}
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def spec_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path / "spec.yaml", text))
    return str(info.value)


def line_of(message: str, name: str) -> int:
    m = re.search(re.escape(name) + r":(\d+):\d+", message)
    assert m, message
    return int(m.group(1))


# ----------------------------------------------------------------------------------------------
# Loading


def test_shipped_spec_loads_with_unique_stable_ids():
    spec = load_spec(SHIPPED_SPEC)
    assert len(spec.ids) == len(set(spec.ids)) >= 10
    areas = {pid.split(".")[0] for pid in spec.ids}
    assert {"helpful", "honesty", "harmless", "format"} <= areas
    assert {p.kind for p in spec.principles} == {"should", "should_not"}


def test_duplicate_principle_id_names_file_line_and_field(tmp_path):
    text = SPEC + "  - id: helpful.answer\n    kind: should\n    text: Again.\n"
    msg = spec_error(tmp_path, text)
    assert line_of(msg, "spec.yaml") == 13  # the repeat, not the first
    assert "principles.3.id: principle ids must be unique; 'helpful.answer' is already principles.0" in msg


def test_missing_field_names_file_line_and_field(tmp_path):
    msg = spec_error(tmp_path, SPEC.replace("    text: Invent facts.\n", ""))
    assert "principles.1.text: Field required" in msg
    assert line_of(msg, "spec.yaml") == 7  # the principle that lacks it


def test_bad_values_name_the_field_and_the_value(tmp_path):
    msg = spec_error(tmp_path, SPEC.replace("kind: should_not\n    text: Invent", "kind: must\n    text: Invent"))
    assert line_of(msg, "spec.yaml") == 8 and "principles.1.kind" in msg and "(given: 'must')" in msg
    msg = spec_error(tmp_path, SPEC.replace("id: harmless.no-harm", "id: Harmless No Harm"))
    assert "principles.2.id: must be dotted lowercase words" in msg and "(given: 'Harmless No Harm')" in msg
    msg = spec_error(tmp_path, SPEC + "colour: red\n")
    assert "colour: unknown field; allowed: version, description, principles" in msg
    msg = spec_error(tmp_path, SPEC.replace("    kind: should\n", "    kind: should\n    kind: should\n", 1))
    assert line_of(msg, "spec.yaml") == 6 and "duplicate key 'kind' (first defined on line 5)" in msg


# ----------------------------------------------------------------------------------------------
# Rubric citations and the content hash


def test_a_rubric_without_criterion_principles_keeps_its_hash(tmp_path):
    plain = load_rubric(write(tmp_path / "plain.yaml", RUBRIC.replace(
        "    principles: [helpful.answer, honesty.no-fabrication]\n", "").replace(
        "    principles: [honesty.no-fabrication, honesty.made-up]\n", "")))
    # the hash as it was computed before criteria could cite principles: no such key in a criterion
    data = plain.model_dump(mode="json")
    for c in data["criteria"]:
        assert c.pop("principles") == []
    old = hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    assert plain.content_hash == old
    cited = load_rubric(write(tmp_path / "cited.yaml", RUBRIC))
    assert cited.content_hash != plain.content_hash
    assert cited.criteria[1].principles == ["honesty.no-fabrication", "honesty.made-up"]
    assert Rubric.model_validate(cited.model_dump()).content_hash == cited.content_hash


def test_shipped_rubric_hashes_moved_only_by_their_citations():
    for path in list_rubrics():
        r = load_rubric(path)
        assert r.principles and all(re.match(r"^[a-z]+\.[a-z0-9\-]+$", p) for p in r.principles), path
        stripped = r.model_copy(update={"criteria": [c.model_copy(update={"principles": []}) for c in r.criteria]})
        data = stripped.model_dump(mode="json")
        for c in data["criteria"]:
            del c["principles"]
        assert stripped.content_hash == hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


# ----------------------------------------------------------------------------------------------
# The check


def test_check_finds_uncovered_principles_and_dangling_citations(tmp_path):
    spec = load_spec(write(tmp_path / "spec.yaml", SPEC))
    rubric = load_rubric(write(tmp_path / "tiny.yaml", RUBRIC))
    result = check_spec(spec, [rubric])
    assert not result.ok
    assert [p.id for p in result.uncovered] == ["harmless.no-harm"]
    assert [(c.rubric, c.field, c.criterion, c.principle) for c in result.dangling] == [
        ("tiny", "criteria.1.principles.1", "truth", "honesty.made-up")
    ]
    assert result.coverage["helpful.answer"] == ["tiny"]


def test_the_shipped_library_answers_to_the_shipped_spec():
    spec = load_spec(SHIPPED_SPEC)
    result = check_spec(spec, [load_rubric(p) for p in list_rubrics()])
    assert result.ok, (result.uncovered, result.dangling)
    assert all(result.coverage[pid] for pid in spec.ids)


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_cli_check_passes_on_the_shipped_library():
    result = invoke("rubrics", "check", "--spec", str(SHIPPED_SPEC))
    assert result.exit_code == 0, result.output
    assert "uncovered principles (0): none" in result.output and "dangling citations (0): none" in result.output


def test_cli_check_fails_and_lists_both(tmp_path):
    spec = write(tmp_path / "spec.yaml", SPEC)
    rubric = write(tmp_path / "tiny.yaml", RUBRIC)
    result = invoke("rubrics", "check", "--spec", str(spec), str(rubric))
    assert result.exit_code == 1, result.output
    assert "uncovered principles (1):\n  harmless.no-harm  (should_not) Help anyone cause harm." in result.output
    assert f"{rubric}:14:" in result.output  # the line of the dangling id
    assert "tiny criteria.1.principles.1: 'honesty.made-up' is not a principle of the spec" in result.output
    # one library rubric covers only part of the shipped spec
    result = invoke("rubrics", "check", "--spec", str(SHIPPED_SPEC), "helpfulness")
    assert result.exit_code == 1 and "harmless.no-harmful-help" in result.output
    # a broken spec is a user error, with its location
    bad = write(tmp_path / "bad.yaml", SPEC.replace("kind: should\n", "kind: maybe\n", 1))
    result = CliRunner().invoke(main, ["rubrics", "check", "--spec", str(bad)])
    assert result.exit_code == 2 and "bad.yaml:5:" in result.output and "principles.0.kind" in result.output


# ----------------------------------------------------------------------------------------------
# Scores per principle


def judgment(rubric: Rubric, scores: dict[str, int] | None, kind: str = "pointwise", **kw) -> Judgment:
    return Judgment(
        key=f"k{len(str(scores))}{kind}", item_id="i", rubric=RubricRef(id=rubric.id, version=rubric.version, hash=kw.pop("hash", rubric.content_hash)),
        judge=JudgeInfo(model="m", model_hash="h", backend="scripted"), sampling=SamplingParams(), prompt_hash="p",
        kind=kind, status="scored" if scores is not None or kind == "pairwise" else "unscored",
        scores=scores, overall=rubric.overall(scores) if scores else None, raw_output="{}",
        error=None if scores is not None or kind == "pairwise" else "unreadable", **kw,
    )


def test_principle_scores_by_hand(tmp_path):
    spec = ModelSpec.model_validate(yaml.safe_load(SPEC))
    rubric = load_rubric(write(tmp_path / "tiny.yaml", RUBRIC))
    js = [
        judgment(rubric, {"quality": 3, "truth": 2}),  # quality 1.0, truth (2-1)/4 = 0.25
        judgment(rubric, {"quality": 2, "truth": 5}),  # quality 0.5, truth 1.0
        judgment(rubric, None),  # unscored
        judgment(rubric, None, kind="pairwise", winner="A"),
        judgment(rubric, {"quality": 1, "truth": 1}, hash="0" * 64),  # another rubric version
    ]
    out = principle_scores(js, [rubric], spec)
    # helpful.answer is cited by the rubric and by "quality": the criterion, more specific, wins
    assert out.scores["helpful.answer"].mean == pytest.approx((1.0 + 0.5) / 2)
    # honesty.no-fabrication: mean of quality and truth per judgment: (1.0+0.25)/2 and (0.5+1.0)/2
    assert out.scores["honesty.no-fabrication"].mean == pytest.approx(((1.0 + 0.25) / 2 + (0.5 + 1.0) / 2) / 2)
    assert out.scores["honesty.no-fabrication"].n == 2 and out.scores["honesty.no-fabrication"].rubrics == ["tiny"]
    assert out.scores["harmless.no-harm"].mean is None and out.scores["harmless.no-harm"].n == 0
    assert "honesty.made-up" not in out.scores  # not in the spec
    assert out.skipped == {"unscored": 1, "pairwise": 1, "unknown_rubric": 1, "no_principles": 0}
    # without a spec every citation is reported
    assert principle_scores(js, [rubric]).scores["honesty.made-up"].mean == pytest.approx((0.25 + 1.0) / 2)


def test_a_rubric_level_citation_scores_the_overall(tmp_path):
    rubric = load_rubric(write(tmp_path / "tiny.yaml", RUBRIC.replace("principles: [helpful.answer]\n", "principles: [harmless.no-harm]\n")))
    j = judgment(rubric, {"quality": 3, "truth": 2})
    out = principle_scores([j], [rubric])
    # overall: (1 * 1.0 + 3 * 0.25) / 4
    assert out.scores["harmless.no-harm"].mean == pytest.approx((1.0 + 3 * 0.25) / 4)
