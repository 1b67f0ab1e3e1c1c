"""``build_preferences``: a TRL-ready preference dataset with provenance, written atomically; ``walk_back``.

OUT_DIR holds (``judgeloop train dpo --data OUT_DIR`` reads it as it is)::

    dataset_dict.json, train/, test/   datasets.DatasetDict.save_to_disk (prompt / chosen / rejected)
    train.parquet, test.parquet        the same rows
    train.jsonl, test.jsonl
    kto/                               the same three forms of the unpaired rows (prompt / completion / label)
    README.md                          the dataset card: inputs, judge, rubric, every count, seed, config
    manifest.json                      the build id, counts and config (what a rerun compares)

Everything is written into a temporary directory beside OUT_DIR and renamed over it at the end; a
rerun whose rows and config are the same leaves OUT_DIR as it is and says so.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from judge.core._errors import DataError, JudgeloopError
from judge.core._records import Item, Judgment, PairVerdict, stable_hash
from rlaif._prefs import Candidate, Inputs, load_inputs, select_pairs
from rlaif._prefs_records import EXCLUSIONS, PreferencePair, PrefsBuild, PrefsConfig

__all__ = ["NoPairsError", "WalkBack", "build_preferences", "walk_back"]

#: Bumped when the rows written for the same inputs change: a new version is a new build.
BUILD_VERSION = 1


class NoPairsError(JudgeloopError):
    """Every candidate pair was excluded (or there was none): there is no dataset to write."""


def _audit_map(inp: Inputs, cfg: PrefsConfig, store: Any | None) -> dict[str, tuple[str, str]]:
    """Per judgment key: its gate scope and the store's decision for that scope ("unaudited" without a store)."""
    from judge.audit._sampling import judgment_scope

    scopes = {j.key: judgment_scope(j, inp.rubric) for j in inp.judgments}
    status: dict[str, str] = {}
    for sc in sorted(set(scopes.values())):
        if store is None:
            status[sc] = "unaudited"
            continue
        from judge.audit._gate import gate

        g = cfg.gate
        d = gate(store, scopes=[sc], min_agreement=g.min_agreement, min_labels=g.min_labels, alpha=g.alpha, name=g.name)
        status[sc] = ("overridden" if d.overridden else "passed") if d.passed else "failed"
    return {k: (sc, status[sc]) for k, sc in scopes.items()}


def _audit_samples(quarantined: list[Candidate], inp: Inputs, build_key: str) -> list[Any]:
    """Hand-picked audit samples (flag ``injection_flag``) for the judgments behind quarantined pairs.

    A hand-picked sample has no inclusion probability (the record refuses one), so estimates skip
    it; its flag says why a reviewer sees it.
    """
    from judge.audit._records import AuditSample, JudgeOutput, sample_id_for
    from judge.audit._sampling import _judge_input, judgment_scope

    run_id = "prefs-" + build_key[:12]
    out = []
    for c in quarantined:
        j = c.judgments[0]
        item = inp.items.get(j.item_id)
        msgs, exact = _judge_input(j, item, inp.rubric)
        v: PairVerdict | None = c.verdict
        if v is not None:
            output = JudgeOutput(status=v.status, winner=v.winner, p_a=v.p_a_mean, rationale=j.rationale,
                                 error=v.error, raw_output=j.raw_output)
        else:
            output = JudgeOutput(status=j.status, scores=j.scores, overall=j.overall, rationale=j.rationale,
                                 error=j.error, raw_output=j.raw_output)
        out.append(AuditSample(
            sample_id=sample_id_for(j.key, j.item_id, run_id), run_id=run_id, judgment_key=j.key,
            judgment_keys=[g.key for g in c.judgments] if v is not None else [j.key], item_id=j.item_id,
            rubric=j.rubric, rubric_def=inp.rubric.model_dump(mode="json"), kind=j.kind, stratum="handpicked",
            cell="", flags=["injection_flag"], inclusion_prob=None, population=0, judge_input=msgs,
            judge_input_exact=exact, item=item, judge_output=output, judge_fingerprint=j.judge.model_hash,
            rubric_hash=j.rubric.hash, prompt_version=judgment_scope(j, inp.rubric).rsplit("|", 1)[1], seed=0,
        ))
    return out


def build_preferences(
    run_dir: str | Path,
    data: str | Path,
    out_dir: str | Path,
    config: PrefsConfig | None = None,
    audit_store: str | Path | None = None,
) -> PrefsBuild:
    """Build the preference dataset of a judged run (see the module docstring of :mod:`rlaif._prefs`).

    Args:
        run_dir: the run directory (``judgments.jsonl`` and its verdicts file), or the judgments file.
        data: the dataset the run judged (the items' texts).
        out_dir: the dataset directory to write.
        config: thresholds, modes and seed; defaults when None.
        audit_store: an audit store: quarantined pairs go to it as hand-picked samples, and each
            pair's audit status is the store's gate decision for its judge scope.

    Raises:
        NoPairsError: every candidate was excluded; nothing is written.
        DataError, ConfigError: unreadable inputs, an ambiguous rubric.
    """
    cfg = config or PrefsConfig()
    inp = load_inputs(run_dir, data, cfg.rubric)
    store = None
    if audit_store is not None:
        from judge.audit._store import AuditStore

        store = AuditStore(audit_store)
    sel = select_pairs(inp, cfg, _audit_map(inp, cfg, store))
    rows = [p.trl_row() for p in sel.pairs]
    build_id = "sha256:" + stable_hash([BUILD_VERSION, rows, cfg.model_dump(mode="json"), sel.excluded])
    samples = _audit_samples(sel.quarantined, inp, build_id) if store is not None else []
    if store is not None and samples:
        store.add_samples(samples)
    ref = inp.judgments[0].rubric
    report = PrefsBuild(
        out_dir=str(out_dir), build_id=build_id, run_dir=str(inp.run_dir), data=str(inp.data), rubric=ref,
        judges=sorted({p.judge_fingerprint for p in sel.pairs}), candidates=sel.candidates, pairs=len(sel.pairs),
        excluded={r: sel.excluded.get(r, 0) for r in EXCLUSIONS}, length_weighted=sel.length_weighted,
        train=sum(p.split == "train" for p in sel.pairs), test=sum(p.split == "test" for p in sel.pairs),
        audit=dict(Counter(p.audit_status for p in sel.pairs)), audit_samples=[s.sample_id for s in samples],
        config=cfg.model_dump(mode="json"),
    )
    if not sel.pairs:
        reasons = ", ".join(f"{r} {n}" for r, n in report.excluded.items() if n) or "the run has no candidate pairs"
        raise NoPairsError(f"no preference pairs from {inp.judgments_path}: {sel.candidates} candidates, all excluded ({reasons})")
    kto = _kto(sel.pairs)
    report.kto_train = sum(r["split"] == "train" for r in kto)
    report.kto_test = len(kto) - report.kto_train
    out = Path(out_dir)
    manifest = out / "manifest.json"
    if manifest.is_file():
        try:
            old = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            old = {}
        if old.get("build_id") == build_id:
            report.unchanged = True
            return report
    elif out.exists() and any(out.iterdir()):
        raise DataError(f"{out}: exists and is not a preference dataset (no manifest.json); choose another --out")
    _write(out, rows, kto, report, inp)
    return report


def _kto(pairs: list[PreferencePair]) -> list[dict[str, Any]]:
    """Unpaired rows; a completion seen twice for a prompt with the same label is written once."""
    seen: set[tuple[str, str, bool]] = set()
    out = []
    for p in pairs:
        for r in p.kto_rows():
            key = (p.prompt_id, r["completion"][0]["content"], r["label"])
            if key not in seen:
                seen.add(key)
                out.append(r)
    return out


def _save(dest: Path, rows: list[dict[str, Any]]) -> None:
    import datasets
    from datasets import Dataset, DatasetDict

    # A build writes a handful of small shards: per-shard progress bars are noise on stderr.
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        _save_splits(dest, rows, Dataset, DatasetDict)
    finally:
        if bars:
            datasets.enable_progress_bars()


def _save_splits(dest: Path, rows: list[dict[str, Any]], Dataset: Any, DatasetDict: Any) -> None:
    by_split = {s: [r for r in rows if r["split"] == s] for s in ("train", "test")}
    features = _features(list(rows[0]))
    # An empty split is left out: datasets 5.2 saves one but cannot load it back.
    splits = {s: Dataset.from_list(r, features=features) for s, r in by_split.items() if r}
    DatasetDict(splits).save_to_disk(str(dest))
    for split, ds in splits.items():
        ds.to_parquet(str(dest / f"{split}.parquet"))
        with (dest / f"{split}.jsonl").open("w", encoding="utf-8") as fh:
            for r in by_split[split]:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")


_FLOATS = {"weight", "margin", "p_a_ab", "p_a_ba", "score_chosen", "score_rejected", "length_ratio"}
_LISTS = {"judgment_keys", "item_ids"}
_BOOLS = {"label", "quarantined"}
_MESSAGES = {"prompt", "chosen", "rejected", "completion"}


def _features(columns: list[str]) -> Any:
    """Fixed column types: a column that is None in every row of one split keeps its type (and the splits agree)."""
    from datasets import Features, List, Value

    def kind(c: str) -> Any:
        if c in _MESSAGES:
            return List({"role": Value("string"), "content": Value("string")})
        if c in _FLOATS:
            return Value("float64")
        if c in _LISTS:
            return List(Value("string"))
        if c in _BOOLS:
            return Value("bool")
        return Value("int64") if c == "rubric_version" else Value("string")

    return Features({c: kind(c) for c in columns})


def _write(out: Path, rows: list[dict[str, Any]], kto: list[dict[str, Any]], report: PrefsBuild, inp: Inputs) -> None:
    from rlaif._prefs_card import dataset_card

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        _save(tmp, rows)
        (tmp / "kto").mkdir()
        _save(tmp / "kto", kto)
        (tmp / "README.md").write_text(dataset_card(report, inp), encoding="utf-8")
        (tmp / "manifest.json").write_text(report.to_json(), encoding="utf-8")
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@dataclass
class WalkBack:
    """Where a pair came from: its judgments, its items (prompt and responses) and its pair verdict."""

    pair: PreferencePair
    judgments: list[Judgment]
    items: list[Item]
    verdict: PairVerdict | None


def walk_back(pair: PreferencePair | dict[str, Any], run_dir: str | Path | None = None,
              data: str | Path | None = None) -> WalkBack:
    """The judgments and items behind a pair (a :class:`PreferencePair` or a written row).

    Args:
        pair: the pair, or a row of the built dataset.
        run_dir: the run (default: the one the pair records).
        data: the dataset (default: the one the pair records).

    Raises:
        DataError: a judgment or item the pair names is not there (the run or dataset changed).
    """
    from judge.analysis._verdicts import read_pair_verdicts, verdicts_path
    from judge.audit._load import load_judgments
    from judge.inputs._data import iter_items
    from rlaif._prefs import _judgments_file

    p = pair if isinstance(pair, PreferencePair) else PreferencePair.from_row(pair)
    jpath = _judgments_file(Path(run_dir or p.run_dir))
    wanted = set(p.judgment_keys)
    found = {j.key: j for j in load_judgments(jpath) if j.key in wanted}
    missing = [k for k in p.judgment_keys if k not in found]
    if missing:
        raise DataError(f"{jpath}: pair {p.pair_id} names judgment(s) not in the run: {', '.join(missing)}")
    items = {it.id: it for it in iter_items(Path(data or p.data)) if it.id in set(p.item_ids)}
    gone = [i for i in p.item_ids if i not in items]
    if gone:
        raise DataError(f"{data or p.data}: pair {p.pair_id} names item(s) not in the dataset: {', '.join(gone)}")
    verdict = None
    vpath = verdicts_path(jpath)
    if p.source == "pairwise" and vpath.is_file():
        verdict = next((v for v in read_pair_verdicts(vpath)
                        if v.item_id == p.item_ids[0] and set(v.judgment_keys.values()) == wanted), None)
    return WalkBack(p, [found[k] for k in p.judgment_keys], [items[i] for i in p.item_ids], verdict)
