"""Preference pairs from a judged run: candidates, the filters every pair must pass, the held-out split.

Candidates come from two places:

* **pair verdicts** (``<stem>.verdicts.jsonl``): a pair is used only when both orders were scored,
  agree (swap-consistent) and are decisive by at least ``min_margin`` (``|P(A wins) - 0.5|``
  averaged over the two orders); unscored, single-order, inconsistent, tied, probability-less and
  low-margin verdicts are counted under their reason, never used;
* **pointwise scores** of the k responses of one prompt (items grouped by ``meta.prompt_id``, else
  by the prompt's text hash): best against worst, or every pair whose overall scores differ by at
  least ``min_score_margin``.

Every candidate then passes, in this order: length balance (chosen much longer than rejected is
dropped or down-weighted, so the policy is not taught verbosity), near-duplicate removal (chosen
and rejected the same text, or the same pair seen before: normalised-text hash, then character
5-gram Jaccard), and quarantine (the sanitiser would change the chosen text: it imitates a verdict
or a data boundary, i.e. it tries to steer the judge; a poisoned preference teaches the policy to
attack its judge). The split is by prompt with a seeded shuffle, so no prompt is in both splits.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from judge.core._errors import ConfigError, DataError
from judge.core._records import Item, Judgment, PairVerdict
from rlaif._prefs_records import EXCLUSIONS, PreferencePair, PrefsConfig

__all__ = ["Inputs", "Selection", "jaccard5", "load_inputs", "prompt_id_of", "select_pairs"]


@dataclass
class Inputs:
    """What a build reads: the run's judgments and verdicts of one rubric, the items, the rubric."""

    run_dir: Path
    judgments_path: Path
    data: Path
    rubric: Any  # judge.inputs.Rubric
    judgments: list[Judgment]
    verdicts: list[PairVerdict]
    items: dict[str, Item]


@dataclass
class Candidate:
    """A pair before the filters, with the judgments it came from."""

    pair: PreferencePair
    judgments: list[Judgment]
    verdict: PairVerdict | None = None


@dataclass
class Selection:
    """The pairs kept, the quarantined ones (for the audit store) and every count."""

    pairs: list[PreferencePair]
    quarantined: list[Candidate]
    candidates: int
    excluded: dict[str, int]
    length_weighted: int = 0
    judgments: dict[str, Judgment] = field(default_factory=dict)


def _judgments_file(run_dir: Path) -> Path:
    if run_dir.is_file():
        return run_dir
    f = run_dir / "judgments.jsonl"
    if not f.is_file():
        raise DataError(f"{run_dir}: no judgments.jsonl there (a run directory of `judgeloop judge`)")
    return f


def _rubric_for(ref: str | None, judgments: list[Judgment]) -> Any:
    from judge.inputs._rubric import resolve_rubric

    hashes = {j.rubric.hash: j.rubric for j in judgments}
    if ref is not None:
        r = resolve_rubric(ref)
        if r.content_hash not in hashes:
            named = ", ".join(f"{x.id} v{x.version} ({h[:12]})" for h, x in hashes.items())
            raise ConfigError(f"rubric {ref!r} (hash {r.content_hash[:12]}) judged nothing in this run; it holds {named}")
        return r
    if len(hashes) != 1:
        named = ", ".join(sorted(f"{x.id}" for x in hashes.values()))
        raise ConfigError(f"the run holds judgments of {len(hashes)} rubrics ({named}); choose one with --rubric")
    ref_ = next(iter(hashes.values()))
    try:
        r = resolve_rubric(ref_.id)
    except Exception:
        raise ConfigError(f"rubric {ref_.id!r} is not in the library; pass its YAML file with --rubric") from None
    if r.content_hash != ref_.hash:
        raise ConfigError(
            f"the library's rubric {ref_.id!r} (hash {r.content_hash[:12]}) is not the one the run used "
            f"({ref_.hash[:12]}); pass that rubric's YAML file with --rubric"
        )
    return r


def load_inputs(run_dir: str | Path, data: str | Path, rubric: str | None = None) -> Inputs:
    """Read a run's judgments (one rubric), its pair verdicts and the items they judged.

    Raises:
        DataError: a file is missing or unreadable.
        ConfigError: the rubric is ambiguous or not the one the run used.
    """
    from judge.analysis._verdicts import pair_verdicts, read_pair_verdicts, verdicts_path
    from judge.audit._load import load_judgments
    from judge.inputs._data import iter_items

    run = Path(run_dir)
    jpath = _judgments_file(run)
    judgments = load_judgments(jpath)
    if not judgments:
        raise DataError(f"{jpath}: no judgments")
    r = _rubric_for(rubric, judgments)
    judgments = [j for j in judgments if j.rubric.hash == r.content_hash]
    vpath = verdicts_path(jpath)
    if vpath.is_file():
        verdicts = [v for v in read_pair_verdicts(vpath) if v.rubric.hash == r.content_hash]
    else:  # a run stopped before its end step: combine the orders here, strictly
        verdicts = pair_verdicts(judgments)
    dpath = Path(data)
    if not dpath.exists():
        raise DataError(f"dataset not found: {dpath}")
    items = {it.id: it for it in iter_items(dpath)}
    return Inputs(run.resolve() if run.is_dir() else jpath.parent.resolve(), jpath, dpath.resolve(), r,
                  judgments, verdicts, items)


def prompt_id_of(item: Item) -> str:
    """The prompt an item answers: its ``meta.prompt_id``, else a hash of the prompt text."""
    pid = item.meta.get("prompt_id")
    if pid is not None and str(pid):
        return str(pid)
    return "p-" + hashlib.sha256(item.prompt.encode("utf-8")).hexdigest()[:16]


_SPACE = re.compile(r"\s+")


def _norm(text: str) -> str:
    return _SPACE.sub(" ", text).strip().lower()


def jaccard5(a: str, b: str) -> float:
    """Jaccard similarity of the character 5-gram sets of two normalised texts (1.0: the same)."""
    x, y = _norm(a), _norm(b)
    if x == y:
        return 1.0
    ga = {x[i : i + 5] for i in range(max(1, len(x) - 4))}
    gb = {y[i : i + 5] for i in range(max(1, len(y) - 4))}
    return len(ga & gb) / len(ga | gb) if ga | gb else 1.0


def _base(inp: Inputs, j: Judgment, audit: dict[str, tuple[str, str]]) -> dict[str, Any]:
    scope, status = audit[j.key]
    return dict(
        rubric=j.rubric, judge_model=j.judge.model, judge_fingerprint=j.judge.model_hash, audit_scope=scope,
        audit_status=status, run_dir=str(inp.run_dir), data=str(inp.data),
    )


def _from_verdicts(inp: Inputs, cfg: PrefsConfig, audit: dict[str, tuple[str, str]], out: Counter) -> list[Candidate]:
    by_key = {j.key: j for j in inp.judgments}
    cands = []
    for v in inp.verdicts:
        if v.status != "scored":
            out["unscored"] += 1
            continue
        if v.consistent is None:
            out["single_order"] += 1
            continue
        if v.consistent is False or v.winner == "inconsistent":
            out["inconsistent"] += 1
            continue
        if v.winner == "tie" or v.winner is None:
            out["tie"] += 1
            continue
        ps = [v.p_a.get(o) for o in v.orders]
        if any(p is None for p in ps):
            out["no_probability"] += 1
            continue
        margin = sum(abs(p - 0.5) for p in ps) / len(ps)  # type: ignore[operator]
        if margin < cfg.min_margin:
            out["below_margin"] += 1
            continue
        item = inp.items.get(v.item_id)
        js = [by_key[k] for k in v.judgment_keys.values() if k in by_key]
        if item is None or item.response_a is None or item.response_b is None or not js:
            out["missing_item"] += 1
            continue
        chosen, rejected = (item.response_a, item.response_b) if v.winner == "A" else (item.response_b, item.response_a)
        pair = PreferencePair(
            prompt=item.prompt, chosen=chosen, rejected=rejected, source="pairwise", prompt_id=prompt_id_of(item),
            margin=round(margin, 6), p_a=dict(v.p_a), chosen_side=v.winner, length_ratio=_ratio(chosen, rejected),
            judgment_keys=[v.judgment_keys[o] for o in v.orders], item_ids=[item.id], **_base(inp, js[0], audit),
        )
        cands.append(Candidate(pair, js, v))
    return cands


def _ratio(chosen: str, rejected: str) -> float:
    return round(len(chosen) / max(1, len(rejected)), 4)


def _from_scores(inp: Inputs, cfg: PrefsConfig, audit: dict[str, tuple[str, str]], out: Counter) -> list[Candidate]:
    latest: dict[str, Judgment] = {}
    for j in inp.judgments:  # a reopened job may hold an item twice: the later judgment counts
        if j.kind != "pairwise":
            latest[j.item_id] = j
    groups: dict[str, list[tuple[Item, Judgment]]] = defaultdict(list)
    for item_id, j in latest.items():
        item = inp.items.get(item_id)
        if j.status != "scored" or j.overall is None:
            out["unscored"] += 1
            continue
        if item is None or item.response is None:
            out["missing_item"] += 1
            continue
        groups[prompt_id_of(item)].append((item, j))
    cands = []
    for pid in sorted(groups):
        # Best first; equal scores in id order, so the choice does not depend on the file's order.
        members = sorted(groups[pid], key=lambda m: (-m[1].overall, m[0].id))  # type: ignore[operator]
        if len(members) < 2:
            out["single_candidate"] += 1
            continue
        if cfg.pointwise_pairs == "best_worst":
            combos = [(members[0], members[-1])]
        else:
            combos = [(members[a], members[b]) for a in range(len(members)) for b in range(a + 1, len(members))]
        for (ci, cj), (ri, rj) in combos:
            diff = float(cj.overall) - float(rj.overall)  # type: ignore[arg-type]
            if diff == 0:
                out["tie"] += 1
                continue
            if diff < cfg.min_score_margin:
                out["below_score_margin"] += 1
                continue
            pair = PreferencePair(
                prompt=ci.prompt, chosen=ci.response, rejected=ri.response, source="pointwise", prompt_id=pid,
                margin=round(diff, 6), scores={"chosen": float(cj.overall), "rejected": float(rj.overall)},  # type: ignore[arg-type]
                length_ratio=_ratio(ci.response, ri.response),  # type: ignore[arg-type]
                judgment_keys=[cj.key, rj.key], item_ids=[ci.id, ri.id], **_base(inp, cj, audit),
            )
            cands.append(Candidate(pair, [cj, rj]))
    return cands


def _flagged(text: str, rubric: Any) -> bool:
    from judge.inputs._prompts import neutralize_imitations

    return neutralize_imitations(text, rubric) != text


def select_pairs(inp: Inputs, cfg: PrefsConfig, audit: dict[str, tuple[str, str]]) -> Selection:
    """Candidates from the run, through every filter, split by prompt (see the module docstring).

    Args:
        inp: the run's inputs.
        cfg: thresholds, modes and the split's seed.
        audit: per judgment key, its gate scope and audit status.
    """
    out: Counter = Counter({r: 0 for r in EXCLUSIONS})
    cands: list[Candidate] = []
    if cfg.source in ("auto", "pairwise"):
        cands += _from_verdicts(inp, cfg, audit, out)
    if cfg.source in ("auto", "pointwise"):
        cands += _from_scores(inp, cfg, audit, out)
    total = len(cands) + sum(out.values())
    kept: list[PreferencePair] = []
    quarantined: list[Candidate] = []
    seen: dict[str, list[PreferencePair]] = defaultdict(list)  # prompt -> pairs kept so far
    seen_hash: set[str] = set()
    weighted = 0
    for c in cands:
        p = c.pair
        if cfg.max_length_ratio is not None and p.length_ratio > cfg.max_length_ratio:
            if cfg.length_mode == "drop":
                out["length_ratio"] += 1
                continue
            p.weight = round(cfg.max_length_ratio / p.length_ratio, 6)
            weighted += 1
        if jaccard5(p.chosen, p.rejected) >= cfg.dedup_threshold:
            out["near_duplicate"] += 1
            continue
        h = _norm(p.prompt) + "\x00" + _norm(p.chosen) + "\x00" + _norm(p.rejected)
        if h in seen_hash or any(
            jaccard5(p.chosen, q.chosen) >= cfg.dedup_threshold and jaccard5(p.rejected, q.rejected) >= cfg.dedup_threshold
            for q in seen[p.prompt_id]
        ):
            out["duplicate_pair"] += 1
            continue
        if _flagged(p.chosen, inp.rubric):
            quarantined.append(c)
            if not cfg.keep_quarantined:
                out["quarantined"] += 1
                continue
            p.quarantined = True
        seen_hash.add(h)
        seen[p.prompt_id].append(p)
        kept.append(p)
    _split(kept, cfg)
    judgments = {j.key: j for c in cands for j in c.judgments}
    return Selection(kept, quarantined, total, dict(out), weighted, judgments)


def _split(pairs: list[PreferencePair], cfg: PrefsConfig) -> None:
    """Assign whole prompts to the test split: a seeded shuffle of the sorted prompt ids."""
    prompts = sorted({p.prompt_id for p in pairs})
    random.Random(cfg.seed).shuffle(prompts)
    n_test = round(cfg.test_fraction * len(prompts)) if len(prompts) >= 2 else 0
    if cfg.test_fraction > 0 and len(prompts) >= 2:
        n_test = min(max(n_test, 1), len(prompts) - 1)  # a held-out split asked for is never empty or everything
    test = set(prompts[:n_test])
    for p in pairs:
        p.split = "test" if p.prompt_id in test else "train"
