"""Reading training rows in TRL's conversational format, checked row by row, with a fingerprint.

Formats (what ``judgeloop prefs build`` writes, and what TRL takes):

* dpo, reward: ``prompt``, ``chosen``, ``rejected``; each a list of ``{"role", "content"}`` messages
  (``prompt`` ends with a user turn, ``chosen``/``rejected`` are the assistant's answers).
* kto: ``prompt``, ``completion`` (message lists) and ``label`` (true: desirable).

Sources: a ``.jsonl`` or ``.parquet`` file; a directory saved by ``datasets.save_to_disk`` (a
``DatasetDict`` uses ``split``); or a directory holding ``<split>.parquet`` or ``<split>.jsonl``. A
dataset card (``README.md``) or ``provenance.json`` beside the rows is hashed into the run's provenance.
Other columns (pair provenance, weights) are kept out of training but do not make a row invalid.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from judge.core._errors import DataError

__all__ = ["COLUMNS", "TrainingData", "load_training_rows"]

COLUMNS: dict[str, tuple[str, ...]] = {
    "dpo": ("prompt", "chosen", "rejected"),
    "reward": ("prompt", "chosen", "rejected"),
    "kto": ("prompt", "completion", "label"),
}
_ROLES = ("system", "user", "assistant", "tool")
_CARDS = ("README.md", "provenance.json", "dataset_card.md")


@dataclass
class TrainingData:
    """Rows ready for TRL, and what identifies them."""

    rows: list[dict[str, Any]]
    source: str
    fingerprint: str
    cards: dict[str, str] = field(default_factory=dict)  # card file -> sha256 of its bytes

    def to_dataset(self) -> Any:
        """The rows as a ``datasets.Dataset`` (imports datasets)."""
        from datasets import Dataset

        return Dataset.from_list(self.rows)


def load_training_rows(path: str | Path, algorithm: str, split: str = "train") -> TrainingData:
    """Read and check every row; the first bad row is an error naming the file, row and field.

    Raises:
        DataError: the source is missing or unreadable, a column is missing, or a row is malformed.
    """
    src = Path(path)
    if not src.exists():
        raise DataError(f"training data not found: {src}")
    raw, where, card_dir = _read(src, split)
    if not raw:
        raise DataError(f"{where}: no training rows")
    columns = COLUMNS[algorithm]
    rows = [_check_row(r, i, where, algorithm, columns) for i, r in enumerate(raw, start=1)]
    digest = hashlib.sha256()
    for r in rows:  # the rows in training order: a reordered dataset is another dataset (another shuffle)
        digest.update(json.dumps(r, sort_keys=True, ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    cards = {}
    for name in _CARDS:
        f = card_dir / name
        if f.is_file():
            cards[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return TrainingData(rows=rows, source=where, fingerprint="sha256:" + digest.hexdigest(), cards=cards)


def _read(src: Path, split: str) -> tuple[list[dict[str, Any]], str, Path]:
    if src.is_file():
        return _read_file(src), str(src), src.parent
    if (src / "dataset_dict.json").is_file() or (src / "state.json").is_file():
        from datasets import DatasetDict, load_from_disk

        ds = load_from_disk(str(src))
        if isinstance(ds, DatasetDict):
            if split not in ds:
                raise DataError(f"{src}: no split {split!r}; the dataset has {', '.join(ds)}")
            ds = ds[split]
        return ds.to_list(), f"{src}[{split}]", src
    for name in (f"{split}.parquet", f"{split}.jsonl"):
        if (src / name).is_file():
            return _read_file(src / name), str(src / name), src
    raise DataError(
        f"{src}: not a training dataset: expected a directory saved by datasets.save_to_disk, or one "
        f"holding {split}.parquet or {split}.jsonl"
    )


def _read_file(f: Path) -> list[dict[str, Any]]:
    if f.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise DataError(f"{f}: reading Parquet needs pyarrow: pip install pyarrow") from None
        try:
            return pq.read_table(f).to_pylist()
        except Exception as exc:  # pyarrow's own error types
            raise DataError(f"{f}: cannot read Parquet: {exc}") from None
    if f.suffix != ".jsonl":
        raise DataError(f"{f}: training data must be .jsonl or .parquet (or a datasets directory)")
    rows = []
    with f.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{f}:{n}: invalid JSON: {exc.msg}") from None
            if not isinstance(row, dict):
                raise DataError(f"{f}:{n}: a row must be a JSON object, got {type(row).__name__}")
            rows.append(row)
    return rows


def _check_row(row: dict[str, Any], n: int, where: str, algorithm: str, columns: tuple[str, ...]) -> dict[str, Any]:
    missing = [c for c in columns if c not in row]
    if missing:
        raise DataError(
            f"{where}: row {n}: missing column(s) {', '.join(missing)}; {algorithm} rows need "
            f"{', '.join(columns)} (TRL's conversational format)"
        )
    out: dict[str, Any] = {}
    for c in columns:
        value = row[c]
        if c == "label":
            if not isinstance(value, bool):
                raise DataError(f"{where}: row {n}: label must be true or false, got {value!r}")
            out[c] = value
            continue
        out[c] = _messages(value, f"{where}: row {n}: {c}")
    if out["prompt"][-1]["role"] == "assistant":
        raise DataError(f"{where}: row {n}: prompt must end with a user (or system/tool) turn, not the assistant's")
    for c in columns[1:]:
        if c != "label" and out[c][0]["role"] != "assistant":
            raise DataError(f"{where}: row {n}: {c} must start with an assistant turn, got {out[c][0]['role']!r}")
    return out


def _messages(value: Any, at: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise DataError(f"{at}: must be a non-empty list of {{role, content}} messages, got {type(value).__name__}")
    msgs = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or set(m) - {"role", "content"} or "role" not in m or "content" not in m:
            raise DataError(f"{at}[{i}]: a message is an object with exactly 'role' and 'content', got {m!r:.80}")
        if m["role"] not in _ROLES:
            raise DataError(f"{at}[{i}].role: must be one of {', '.join(_ROLES)}, got {m['role']!r}")
        if not isinstance(m["content"], str):
            raise DataError(f"{at}[{i}].content: must be a string, got {type(m['content']).__name__}")
        msgs.append({"role": m["role"], "content": m["content"]})
    return msgs
