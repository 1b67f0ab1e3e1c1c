"""Moving audit data in and out of the store: JSONL, CSV and Label Studio.

- JSONL: ``{"type": "sample" | "label" | "override" | "run", "record": {...}}`` per line; a full copy.
- CSV: the label history, one row per label row, values as JSON text; for spreadsheets and R.
- Label Studio: :func:`export_label_studio` writes import-format tasks (``[{"id", "data": {...}}]``;
  never the judge's verdict, so labelling there stays blind) and the matching labelling config
  (``<path>.xml``); :func:`import_label_studio` reads Label Studio's JSON export
  (``[{"id", "data", "annotations": [{"id", "result": [{"from_name", "to_name", "type": "choices",
  "value": {"choices": [...]}}], "completed_by": ...}]}]``) back as before-reveal labels.

Writes go through a temporary file and a rename; imports are idempotent (label ids are derived from
the source row, and rows already stored are skipped).
"""

from __future__ import annotations

import csv
import io
import json
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pydantic

from judge.audit._records import AuditSample, HumanLabel, Override, SamplingRun
from judge.core._errors import DataError
from judge.core._io import atomic_write, write_json
from judge.core._records import stable_hash

if TYPE_CHECKING:
    from judge.audit._store import AuditStore

__all__ = [
    "export_csv",
    "export_jsonl",
    "export_label_studio",
    "import_csv",
    "import_jsonl",
    "import_label_studio",
    "label_studio_config",
]

CSV_FIELDS = ["label_id", "sample_id", "reviewer", "phase", "value", "shown_order", "order_seed", "note",
              "skipped", "undoes", "source", "created_at"]


def _read_json_lines(path: Path) -> list[tuple[int, dict[str, Any]]]:
    out = []
    with path.open("r", encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                out.append((n, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{n}: not JSON ({exc.msg})") from None
    return out


def export_jsonl(store: "AuditStore", path: str | Path) -> int:
    """Write every sample, label row and override of ``store`` to ``path`` as JSONL."""
    lines = [json.dumps({"type": "sample", "record": s.model_dump(mode="json")}, ensure_ascii=False) for s in store.samples()]
    lines += [json.dumps({"type": "label", "record": x.model_dump(mode="json")}, ensure_ascii=False) for x in store.labels()]
    lines += [json.dumps({"type": "override", "record": o.model_dump(mode="json")}, ensure_ascii=False) for o in store.overrides()]
    lines += [json.dumps({"type": "run", "record": r.model_dump(mode="json")}, ensure_ascii=False) for r in store.runs()]
    atomic_write(Path(path), "".join(line + "\n" for line in lines))
    return len(lines)


def import_jsonl(store: "AuditStore", path: str | Path) -> int:
    """Add the rows of an :func:`export_jsonl` file that ``store`` does not hold yet."""
    path = Path(path)
    samples, labels, overrides, runs = [], [], [], []
    for n, row in _read_json_lines(path):
        kind = row.get("type") if isinstance(row, dict) else None
        model = {"sample": AuditSample, "label": HumanLabel, "override": Override, "run": SamplingRun}.get(kind)  # type: ignore[arg-type]
        if model is None:
            raise DataError(f"{path}:{n}: type must be sample, label, override or run, got {kind!r}")
        try:
            rec = model.model_validate(row.get("record"))
        except pydantic.ValidationError as exc:
            raise DataError(f"{path}:{n}: invalid {kind}: {exc.errors(include_url=False)[0]['msg']}") from None
        {"sample": samples, "label": labels, "override": overrides, "run": runs}[kind].append(rec)  # type: ignore[index]
    added = sum(store.add_run(r) for r in runs)
    added += store.add_samples(samples)
    added += sum(store._add_label_if_new(x) for x in labels)
    known = {o.model_dump_json() for o in store.overrides()}
    for o in overrides:
        if o.model_dump_json() not in known:
            store.add_override(o)
            added += 1
    return added


def export_csv(store: "AuditStore", path: str | Path) -> int:
    """Write the label history of ``store`` as CSV (values as JSON text)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
    writer.writeheader()
    rows = store.labels()
    for lab in rows:
        d = lab.model_dump(mode="json")
        d["value"] = "" if lab.value is None else json.dumps(lab.value, ensure_ascii=False)
        d["skipped"] = "true" if lab.skipped else "false"
        writer.writerow({k: "" if d.get(k) is None else d[k] for k in CSV_FIELDS})
    atomic_write(Path(path), buf.getvalue())
    return len(rows)


def import_csv(store: "AuditStore", path: str | Path) -> int:
    """Add the label rows of an :func:`export_csv` file that ``store`` does not hold yet."""
    path = Path(path)
    added = 0
    with path.open("r", encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = set(CSV_FIELDS) - set(reader.fieldnames or [])
        if missing:
            raise DataError(f"{path}: missing columns {sorted(missing)}")
        for n, row in enumerate(reader, 2):
            rec: dict[str, Any] = {k: (v if v != "" else None) for k, v in row.items() if k in CSV_FIELDS}
            try:
                rec["value"] = json.loads(rec["value"]) if rec["value"] is not None else None
                rec["skipped"] = rec["skipped"] == "true"
                rec["order_seed"] = int(rec["order_seed"]) if rec["order_seed"] is not None else None
                lab = HumanLabel.model_validate(rec)
            except (json.JSONDecodeError, ValueError) as exc:
                raise DataError(f"{path}:{n}: invalid label row ({exc})") from None
            added += store._add_label_if_new(lab)
    return added


# ----------------------------------------------------------------------------------------------
# Label Studio


def _criteria(sample: AuditSample) -> list[dict[str, Any]]:
    return list((sample.rubric_def or {}).get("criteria") or [])


def label_studio_config(samples: list[AuditSample]) -> str:
    """A Label Studio labelling config (XML) for ``samples``: one choices control per verdict."""
    pairwise = any(s.kind == "pairwise" for s in samples)
    parts = ['<View>', '  <Header value="Prompt"/>', '  <Text name="prompt" value="$prompt"/>']
    if pairwise:
        parts += ['  <Header value="Response A"/>', '  <Text name="response_a" value="$response_a"/>',
                  '  <Header value="Response B"/>', '  <Text name="response_b" value="$response_b"/>',
                  '  <Choices name="winner" toName="prompt" choice="single" required="true">',
                  '    <Choice value="a"/>', '    <Choice value="b"/>', '    <Choice value="tie"/>', '  </Choices>']
    criteria: dict[str, dict[str, Any]] = {}
    for s in samples:
        if s.kind != "pairwise":
            for c in _criteria(s):
                criteria.setdefault(c["name"], c)
    if criteria:
        parts += ['  <Header value="Response"/>', '  <Text name="response" value="$response"/>']
        for name, c in criteria.items():
            levels = c.get("scale") or {}
            parts.append(f'  <Header value="{escape(name)}: {escape(str(c.get("question", "")))}"/>')
            parts.append(f'  <Choices name="{escape(name)}" toName="response" choice="single">')
            parts += [f'    <Choice value="{escape(str(k))}" hint="{escape(str(v))}"/>' for k, v in levels.items()]
            parts.append("  </Choices>")
    parts.append("</View>")
    return "\n".join(parts) + "\n"


def export_label_studio(store: "AuditStore", path: str | Path) -> int:
    """Write the store's samples as Label Studio import tasks, and the labelling config beside them."""
    samples = [s for s in store.samples() if s.item is not None]
    tasks = []
    for s in samples:
        item = s.item
        assert item is not None
        data: dict[str, Any] = {"sample_id": s.sample_id, "item_id": s.item_id, "rubric": s.rubric.id,
                                "kind": s.kind, "prompt": item.prompt}
        if s.kind == "pairwise":
            data.update(response_a=item.response_a, response_b=item.response_b)
        else:
            data.update(response=item.response, reference=item.reference)
        tasks.append({"data": data})
    path = Path(path)
    write_json(path, tasks)
    atomic_write(path.with_suffix(".xml"), label_studio_config(samples))
    return len(tasks)


def _annotator(completed_by: Any) -> str:
    if isinstance(completed_by, dict):
        for key in ("email", "username", "id"):
            if completed_by.get(key) not in (None, ""):
                return f"label-studio:{completed_by[key]}"
    return f"label-studio:{completed_by}"


def _value_from(result: list[dict[str, Any]], sample: AuditSample, where: str) -> str | dict[str, int] | None:
    chosen: dict[str, str] = {}
    for r in result:
        if r.get("type") == "choices":
            choices = (r.get("value") or {}).get("choices") or []
            if len(choices) != 1:
                raise DataError(f"{where}: {r.get('from_name')!r} must hold exactly one choice, got {choices}")
            chosen[str(r.get("from_name"))] = str(choices[0])
    if not chosen:
        return None
    if sample.kind == "pairwise":
        v = chosen.get("winner", "").lower()
        if v not in ("a", "b", "tie"):
            raise DataError(f"{where}: winner must be a, b or tie, got {chosen.get('winner')!r}")
        return v
    names = [c["name"] for c in _criteria(sample)] or sorted(chosen)
    try:
        return {n: int(chosen[n]) for n in names if n in chosen}
    except ValueError as exc:
        raise DataError(f"{where}: a score is not an integer ({exc})") from None


def import_label_studio(store: "AuditStore", path: str | Path) -> int:
    """Read a Label Studio JSON export: every annotation becomes a before-reveal label (Label Studio never showed the judge)."""
    path = Path(path)
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not a Label Studio JSON export ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(tasks, list):
        raise DataError(f"{path}: a Label Studio JSON export is a list of tasks, got {type(tasks).__name__}")
    added = 0
    for i, task in enumerate(tasks):
        data = task.get("data") or {}
        sid = data.get("sample_id")
        if not sid:
            raise DataError(f"{path}: task {i} (id {task.get('id')}) has no data.sample_id; was it exported by judgeloop?")
        sample = store.sample(sid)
        for j, ann in enumerate(task.get("annotations") or []):
            if ann.get("was_cancelled"):
                continue
            where = f"{path}: task {task.get('id', i)} annotation {ann.get('id', j)}"
            value = _value_from(ann.get("result") or [], sample, where)
            lab = HumanLabel(
                label_id="ls-" + stable_hash([sid, task.get("id", i), ann.get("id", j), ann.get("result")])[:24],
                sample_id=sid,
                reviewer=_annotator(ann.get("completed_by")),
                phase="before_reveal",
                value=value,
                skipped=value is None,
                shown_order="AB" if sample.kind == "pairwise" else None,
                source="label-studio",
                **({"created_at": str(when)} if (when := ann.get("created_at") or ann.get("updated_at")) else {}),
            )
            added += store._add_label_if_new(lab)
    return added
