"""Rubric models and the YAML loader: the shipped library, content hashes, and located errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from judge.core._errors import RubricError
from judge.inputs._rubric import RUBRIC_DIR, Rubric, list_rubrics, load_rubric, resolve_rubric

SHIPPED = ["factual_consistency", "harmlessness", "helpfulness", "honesty", "instruction_following"]

GOOD = """\
id: tiny
version: 1
mode: pointwise
description: A tiny rubric for tests.
criteria:
  - name: quality
    question: Is it good?
    scale:
      1: Bad.
      2: Fair.
      3: Good.
"""


def write(tmp_path: Path, text: str, name: str = "tiny.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str, name: str = "tiny.yaml") -> str:
    path = write(tmp_path, text, name)
    with pytest.raises(RubricError) as info:
        load_rubric(path)
    message = str(info.value)
    assert str(path) in message, message
    return message


def line_of(message: str, path_name: str) -> int:
    """The line number of the first ``file:line:col`` location in an error message."""
    m = re.search(re.escape(path_name) + r":(\d+):(\d+)", message)
    assert m, f"no file:line:col location in {message!r}"
    return int(m.group(1))


# ----------------------------------------------------------------------------------------------
# The library


def test_library_lists_the_shipped_rubrics():
    assert [p.stem for p in list_rubrics()] == SHIPPED


@pytest.mark.parametrize("rid", SHIPPED)
def test_every_shipped_rubric_is_complete(rid):
    rubric = resolve_rubric(rid)
    assert rubric.id == rid
    assert rubric.version == 1
    assert rubric.description.strip()
    assert rubric.principles, "a library rubric says which principles it derives from"
    for c in rubric.criteria:
        assert c.question.strip().endswith("?")
        if rubric.mode == "pairwise":
            assert c.scale is None
        else:
            assert c.scale is not None
            assert all(text.strip() for text in c.scale.values())
            assert list(c.scale) == list(range(c.min_score, c.max_score + 1))


def test_library_covers_every_mode_and_has_few_shot_examples():
    rubrics = {rid: resolve_rubric(rid) for rid in SHIPPED}
    assert {r.mode for r in rubrics.values()} == {"pointwise", "pairwise", "reference"}
    assert rubrics["instruction_following"].mode == "pairwise"
    assert rubrics["instruction_following"].allow_tie is True
    assert rubrics["factual_consistency"].mode == "reference"
    assert all(rubrics[r].mode == "pointwise" for r in ("helpfulness", "harmlessness", "honesty"))
    with_examples = [r for r in rubrics.values() if r.examples]
    assert with_examples
    pairwise_winners = {ex.winner for ex in rubrics["instruction_following"].examples}
    assert pairwise_winners == {"A", "B"}, "few-shot verdicts should not all favour one position"


@pytest.mark.parametrize("rid", SHIPPED)
def test_content_hash_is_stable_across_loads(rid):
    path = RUBRIC_DIR / f"{rid}.yaml"
    first, second = load_rubric(path), load_rubric(path)
    assert first is not second
    assert first.content_hash == second.content_hash
    assert re.fullmatch(r"[0-9a-f]{64}", first.content_hash)
    assert first.ref == f"{rid}@1#{first.content_hash[:12]}"


def test_library_hashes_are_distinct():
    hashes = {resolve_rubric(rid).content_hash for rid in SHIPPED}
    assert len(hashes) == len(SHIPPED)


def test_hash_ignores_yaml_formatting_but_not_content(tmp_path):
    base = load_rubric(write(tmp_path, GOOD, "a.yaml")).content_hash
    # Same content, different YAML: comments, flow style, key order, scale order.
    reformatted = (
        "# a comment\n"
        "description: 'A tiny rubric for tests.'\n"
        "mode: pointwise\nversion: 1\nid: tiny\n"
        "criteria: [{name: quality, question: 'Is it good?', scale: {3: Good., 1: Bad., 2: Fair.}}]\n"
    )
    assert load_rubric(write(tmp_path, reformatted, "b.yaml")).content_hash == base

    changes = {
        "wording of a level": GOOD.replace("2: Fair.", "2: Fair enough."),
        "question": GOOD.replace("Is it good?", "Is it any good?"),
        "version": GOOD.replace("version: 1", "version: 2"),
        "description": GOOD.replace("for tests.", "for the tests."),
        "weight": GOOD.replace("    question: Is it good?\n", "    question: Is it good?\n    weight: 2\n"),
        "instructions": GOOD + "instructions: Be strict.\n",
        "principles": GOOD + "principles: [Be good.]\n",
        "whitespace inside a text": GOOD.replace("1: Bad.", "1: 'Bad. '"),
    }
    seen = {base}
    for what, text in changes.items():
        h = load_rubric(write(tmp_path, text, "c.yaml")).content_hash
        assert h not in seen, f"changing the {what} must change the hash"
        seen.add(h)


def test_rubric_models_are_immutable():
    rubric = resolve_rubric("helpfulness")
    with pytest.raises(Exception):
        rubric.version = 2  # type: ignore[misc]


def test_overall_is_weighted_and_normalised():
    rubric = resolve_rubric("factual_consistency")  # consistency 1-5 weight 2, completeness 1-3 weight 1
    assert rubric.overall({"consistency": 5, "completeness": 3}) == 1.0
    assert rubric.overall({"consistency": 1, "completeness": 1}) == 0.0
    assert rubric.overall({"consistency": 5, "completeness": 1}) == pytest.approx(2 / 3)
    assert rubric.overall({"consistency": 3, "completeness": 2}) == pytest.approx(0.5)


# ----------------------------------------------------------------------------------------------
# Loading by id


def test_resolve_by_id_and_by_path():
    by_id = resolve_rubric("honesty")
    by_path = resolve_rubric(str(RUBRIC_DIR / "honesty.yaml"))
    assert by_id.content_hash == by_path.content_hash


def test_unknown_id_lists_the_library(tmp_path):
    write(tmp_path, GOOD, "tiny.yaml")
    with pytest.raises(RubricError) as info:
        resolve_rubric("nope", directory=tmp_path)
    assert "unknown rubric 'nope'" in str(info.value)
    assert "known: tiny" in str(info.value)


def test_id_must_match_file_name_when_loaded_by_id(tmp_path):
    write(tmp_path, GOOD, "other.yaml")
    with pytest.raises(RubricError) as info:
        resolve_rubric("other", directory=tmp_path)
    message = str(info.value)
    assert "other.yaml" in message
    assert "id 'tiny' does not match the file name 'other'" in message


# ----------------------------------------------------------------------------------------------
# Bad rubrics: every message names the file, the line, the field, and the allowed and given values


def test_unknown_top_level_field_lists_allowed_fields(tmp_path):
    msg = load_error(tmp_path, GOOD + "colour: red\n")
    assert line_of(msg, "tiny.yaml") == 12
    assert "colour: unknown field" in msg
    assert "allowed: id, version, description, mode, criteria" in msg
    assert "principles" in msg and "examples" in msg
    assert "(given: 'red')" in msg


def test_unknown_criterion_field_lists_criterion_fields(tmp_path):
    msg = load_error(tmp_path, GOOD.replace("    question: Is it good?\n", "    question: Is it good?\n    wieght: 2\n"))
    assert line_of(msg, "tiny.yaml") == 8
    assert "criteria.0.wieght: unknown field; allowed: name, question, weight, scale" in msg
    assert "(given: 2)" in msg


def test_unknown_example_field_lists_example_fields(tmp_path):
    text = GOOD + "examples:\n  - prompt: p\n    response: r\n    scores: {quality: 2}\n    answer: x\n"
    msg = load_error(tmp_path, text)
    assert line_of(msg, "tiny.yaml") == 16
    assert "examples.0.answer: unknown field; allowed: prompt, response, response_a, response_b, reference" in msg


def test_bad_mode_lists_the_three_modes(tmp_path):
    msg = load_error(tmp_path, GOOD.replace("mode: pointwise", "mode: listwise"))
    assert line_of(msg, "tiny.yaml") == 3
    assert "mode:" in msg
    assert "'pointwise', 'pairwise' or 'reference'" in msg
    assert "(given: 'listwise')" in msg


def test_non_consecutive_scale(tmp_path):
    msg = load_error(tmp_path, GOOD.replace("      3: Good.", "      4: Good."))
    assert line_of(msg, "tiny.yaml") == 9
    assert "criteria.0.scale" in msg
    assert "consecutive" in msg and "[1, 2, 4]" in msg


def test_scale_needs_two_levels_each_described(tmp_path):
    one = GOOD.replace("      2: Fair.\n      3: Good.\n", "")
    msg = load_error(tmp_path, one)
    assert "criteria.0.scale: needs at least 2 levels, got 1" in msg
    blank = GOOD.replace("2: Fair.", "2: ''")
    msg = load_error(tmp_path, blank)
    assert "criteria.0.scale: level 2 needs a description" in msg


def test_scale_levels_must_be_integers(tmp_path):
    msg = load_error(tmp_path, GOOD.replace("      3: Good.", "      three: Good."))
    assert line_of(msg, "tiny.yaml") == 11
    assert "criteria.0.scale" in msg and "valid integer" in msg and "'three'" in msg


def test_missing_scale_in_pointwise_and_reference(tmp_path):
    no_scale = GOOD.split("    scale:")[0]
    msg = load_error(tmp_path, no_scale)
    assert line_of(msg, "tiny.yaml") == 6
    assert "criteria.0: scale is required in pointwise mode (criterion 'quality')" in msg
    msg = load_error(tmp_path, no_scale.replace("mode: pointwise", "mode: reference"))
    assert "scale is required in reference mode" in msg


def test_pairwise_criteria_need_no_scale(tmp_path):
    text = GOOD.split("    scale:")[0].replace("mode: pointwise", "mode: pairwise")
    rubric = load_rubric(write(tmp_path, text))
    assert rubric.mode == "pairwise" and rubric.criteria[0].scale is None


def test_duplicate_criterion_names_point_at_the_repeat(tmp_path):
    text = GOOD + "  - name: quality\n    question: Again?\n    scale: {1: a, 2: b}\n"
    msg = load_error(tmp_path, text)
    assert line_of(msg, "tiny.yaml") == 12
    assert "criteria.1.name" in msg
    assert "criterion names must be unique" in msg and "'quality'" in msg


def test_duplicate_yaml_keys_are_errors(tmp_path):
    msg = load_error(tmp_path, GOOD.replace("version: 1\n", "version: 1\nversion: 2\n"))
    assert "tiny.yaml:3:1: duplicate key 'version' (first defined on line 2)" in msg
    nested = GOOD.replace("      3: Good.", "      3: Good.\n      3: Great.")
    msg = load_error(tmp_path, nested)
    assert "tiny.yaml:12:7: duplicate key '3' (first defined on line 11)" in msg


def test_yaml_syntax_error_has_line_and_column(tmp_path):
    msg = load_error(tmp_path, GOOD.replace("description: A tiny rubric for tests.", "description: [unclosed"))
    assert "invalid YAML" in msg
    assert line_of(msg, "tiny.yaml") == 5
    msg = load_error(tmp_path, "id: tiny\n\tversion: 1\n")
    assert "invalid YAML" in msg and line_of(msg, "tiny.yaml") == 2


@pytest.mark.parametrize("text, kind", [("- a\n- b\n", "list"), ("just a string\n", "str"), ("", "NoneType")])
def test_file_must_be_a_mapping(tmp_path, text, kind):
    msg = load_error(tmp_path, text)
    assert f"a rubric must be a YAML mapping, got {kind}" in msg


def test_missing_file(tmp_path):
    with pytest.raises(RubricError) as info:
        load_rubric(tmp_path / "absent.yaml")
    assert "absent.yaml: cannot read rubric" in str(info.value)


def test_missing_required_field(tmp_path):
    msg = load_error(tmp_path, GOOD.replace("description: A tiny rubric for tests.\n", ""))
    assert "description: Field required" in msg


def test_ranges_quote_the_given_value(tmp_path):
    msg = load_error(tmp_path, GOOD.replace("version: 1", "version: 0"))
    assert line_of(msg, "tiny.yaml") == 2
    assert "version: Input should be greater than or equal to 1 (given: 0)" in msg
    msg = load_error(tmp_path, GOOD.replace("    question: Is it good?\n", "    question: Is it good?\n    weight: -1\n"))
    assert "criteria.0.weight: Input should be greater than 0 (given: -1)" in msg


def test_names_and_ids_must_be_identifiers(tmp_path):
    msg = load_error(tmp_path, GOOD.replace("name: quality", "name: Overall Quality"))
    assert line_of(msg, "tiny.yaml") == 6
    assert "criteria.0.name: must be lower_snake_case" in msg and "(given: 'Overall Quality')" in msg
    msg = load_error(tmp_path, GOOD.replace("id: tiny", "id: Tiny Rubric"))
    assert "id: must be a lowercase slug" in msg and "(given: 'Tiny Rubric')" in msg


def test_several_errors_are_all_reported(tmp_path):
    text = GOOD.replace("version: 1", "version: zero").replace("mode: pointwise", "mode: ranked") + "extra: 1\n"
    msg = load_error(tmp_path, text)
    assert "(3 errors)" in msg
    assert "version:" in msg and "mode:" in msg and "extra: unknown field" in msg


# ----------------------------------------------------------------------------------------------
# Few-shot examples are checked against the rubric


def example(text: str) -> str:
    return GOOD + "examples:\n" + text


def test_example_score_out_of_range(tmp_path):
    msg = load_error(tmp_path, example("  - prompt: p\n    response: r\n    scores: {quality: 7}\n"))
    assert line_of(msg, "tiny.yaml") == 15
    assert "examples.0.scores.quality: must be in 1..3 (given: 7)" in msg


def test_example_missing_and_unknown_criteria(tmp_path):
    msg = load_error(tmp_path, example("  - prompt: p\n    response: r\n    scores: {}\n"))
    assert "examples.0.scores: missing criterion 'quality'" in msg
    msg = load_error(tmp_path, example("  - prompt: p\n    response: r\n    scores: {quality: 1, style: 2}\n"))
    assert "examples.0.scores: unknown criteria ['style']; allowed: ['quality']" in msg


def test_example_fields_depend_on_mode(tmp_path):
    msg = load_error(tmp_path, example("  - prompt: p\n    scores: {quality: 1}\n"))
    assert "examples.0: a pointwise example needs response and scores" in msg
    ref = example("  - prompt: p\n    response: r\n    scores: {quality: 1}\n").replace("mode: pointwise", "mode: reference")
    msg = load_error(tmp_path, ref)
    assert "examples.0: a reference example needs a reference" in msg


PAIRWISE = """\
id: pair
version: 1
mode: pairwise
description: Which is better.
allow_tie: false
criteria:
  - name: better
    question: Which is better?
examples:
"""


def test_pairwise_examples(tmp_path):
    msg = load_error(tmp_path, PAIRWISE + "  - prompt: p\n    response: r\n    winner: A\n")
    assert line_of(msg, "tiny.yaml") == 10
    assert "examples.0: a pairwise example needs response_a, response_b and winner" in msg
    msg = load_error(tmp_path, PAIRWISE + "  - prompt: p\n    response_a: a\n    response_b: b\n    winner: tie\n")
    assert "examples.0.winner: 'tie' is not allowed when the rubric sets allow_tie: false" in msg
    msg = load_error(tmp_path, PAIRWISE + "  - prompt: p\n    response_a: a\n    response_b: b\n    winner: C\n")
    assert "examples.0.winner" in msg and "'A', 'B' or 'tie'" in msg and "(given: 'C')" in msg


def test_rubric_validates_without_yaml():
    with pytest.raises(Exception) as info:
        Rubric.model_validate({"id": "x", "version": 1, "description": "d", "mode": "pointwise", "criteria": []})
    assert "criteria" in str(info.value)


def test_a_modified_copy_gets_its_own_hash():
    rubric = resolve_rubric("helpfulness")
    original = rubric.content_hash  # computed (and cached) before the copy
    bumped = rubric.model_copy(update={"version": 2})
    assert bumped.version == 2
    assert bumped.content_hash != original
    assert bumped.content_hash == Rubric.model_validate(bumped.model_dump()).content_hash
    assert rubric.model_copy().content_hash == original


def test_pairwise_criteria_take_no_scale(tmp_path):
    text = GOOD.replace("mode: pointwise", "mode: pairwise")
    msg = load_error(tmp_path, text)
    assert line_of(msg, "tiny.yaml") == 9
    assert "criteria.0.scale: pairwise criteria have no scale" in msg and "'quality'" in msg


def test_example_fields_the_mode_does_not_use_are_errors(tmp_path):
    msg = load_error(tmp_path, example("  - prompt: p\n    response: r\n    response_b: x\n    scores: {quality: 1}\n"))
    assert line_of(msg, "tiny.yaml") == 15
    assert "examples.0.response_b: not used by a pointwise rubric" in msg
    pair = PAIRWISE + "  - prompt: p\n    response_a: a\n    response_b: b\n    winner: A\n    scores: {better: 1}\n"
    msg = load_error(tmp_path, pair)
    assert "examples.0.scores: not used by a pairwise rubric" in msg


def test_examples_need_a_rationale_when_the_rubric_asks_for_one(tmp_path):
    text = example("  - prompt: p\n    response: r\n    scores: {quality: 2}\n") + "rationale: true\n"
    msg = load_error(tmp_path, text)
    assert "examples.0.rationale: required when the rubric sets rationale: true" in msg
    ok = example("  - prompt: p\n    response: r\n    scores: {quality: 2}\n    rationale: Fair.\n") + "rationale: true\n"
    assert load_rubric(write(tmp_path, ok)).examples[0].rationale == "Fair."


def test_a_directory_named_like_an_id_does_not_shadow_the_library(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "honesty").mkdir()
    assert resolve_rubric("honesty").id == "honesty"
