"""What the judge is asked and shown: rubrics, prompts (judged texts fenced as data), datasets."""

from judge.inputs._data import (
    Row,
    count_rows,
    iter_rows,
)
from judge.inputs._prompts import (
    REMINDER,
    data_block,
    neutralize_imitations,
    output_schema,
    prompt_hash,
    render_messages,
    verdict_keys,
)
from judge.inputs._rubric import (
    Criterion,
    FewShotExample,
    Rubric,
    RUBRIC_DIR,
    list_rubrics,
    load_rubric,
    resolve_rubric,
)

__all__ = [
    "Criterion",
    "FewShotExample",
    "REMINDER",
    "RUBRIC_DIR",
    "Row",
    "Rubric",
    "count_rows",
    "data_block",
    "iter_rows",
    "list_rubrics",
    "load_rubric",
    "neutralize_imitations",
    "output_schema",
    "prompt_hash",
    "render_messages",
    "resolve_rubric",
    "verdict_keys",
]
