"""End to end on the real bundled model: an export judged as it is, through a column mapping."""

from __future__ import annotations

import pytest

from judge.analysis._verdicts import read_judgments
from judge.core._config import JobConfig
from judge.runner._engine import job_paths, run_job

pytestmark = [pytest.mark.model]

ALPACA = [
    {"instruction": "What is 12 + 7?", "output": "12 + 7 = 19.", "generator": "model-x", "dataset": "arith"},
    {"instruction": "Name the capital of France.", "output": "Paris.", "generator": "model-y", "dataset": "geo"},
    {"instruction": "What is 12 + 7?", "output": "12 + 7 = 19.", "generator": "model-x", "dataset": "arith"},
    {"instruction": "Say hello.", "generator": "model-y", "dataset": "chat"},  # no output column
]


def test_a_datasets_directory_is_judged_through_its_column_mapping(tmp_path, hf_backend):
    datasets = pytest.importorskip("datasets")
    rows = [dict(r, question_id=n % 3) for n, r in enumerate(ALPACA)]  # rows 0 and 3 share an id
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "alpaca"))
    cfg = JobConfig(
        data=tmp_path / "alpaca",
        output=tmp_path / "run" / "judgments.jsonl",
        rubrics=["helpfulness"],
        columns={"id": "question_id", "prompt": "instruction", "response": "output"},
        batch_size=4,
    )
    summary = run_job(cfg, backend=hf_backend, progress=False)
    judgments = read_judgments(job_paths(summary.output).output)
    # Row 3 (the repeat of row 0's texts under another id) is judged as its own item from the
    # cache; row 4 has no output and shares id 0 with other texts: one reject, two reasons.
    assert sorted(j.item_id for j in judgments) == ["0", "1", "2"]
    assert summary.new_judgments == 2 and summary.cached == 1
    assert summary.rows == 4 and summary.rejected == 1
    assert summary.data is not None and summary.data.extra_columns == {"generator": 3, "dataset": 3}
    assert "extra columns kept in meta: generator, dataset" in summary.table()
    # The judge saw the mapped texts: its trace matches an item built from the export's own columns
    # (rebuild_messages refuses an item whose texts differ from those judged).
    from judge.core._records import Item
    from judge.inputs import resolve_rubric
    from judge.scoring import rebuild_messages

    by_id = {j.item_id: j for j in judgments}
    item = Item(id="1", prompt=ALPACA[1]["instruction"], response=ALPACA[1]["output"])
    shown = "\n".join(m.content for m in rebuild_messages(by_id["1"], item, resolve_rubric("helpfulness")))
    assert "Name the capital of France." in shown and "Paris." in shown
    with pytest.raises(ValueError, match="does not hold the texts"):
        rebuild_messages(by_id["1"], item.model_copy(update={"response": "Lyon."}), resolve_rubric("helpfulness"))
