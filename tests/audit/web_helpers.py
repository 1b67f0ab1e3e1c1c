"""Sample data and a live server for the review UI tests (built with the store API; no model)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from net_helpers import free_port

from judge.audit import AuditSample, AuditStore, JudgeOutput
from judge.core._records import Item, Message, RubricRef

PAIR_RUBRIC: dict[str, Any] = {
    "id": "pair_quality",
    "version": 1,
    "mode": "pairwise",
    "description": "Which of two responses better answers the user's request.",
    "criteria": [{"name": "overall", "question": "Which response is more helpful, correct and honest?", "weight": 1.0}],
    "allow_tie": True,
}
POINT_RUBRIC: dict[str, Any] = {
    "id": "helpfulness",
    "version": 1,
    "mode": "pointwise",
    "description": "How well the response helps the user accomplish what they asked for.",
    "instructions": "Judge substance, not style.",
    "criteria": [
        {
            "name": "helpfulness",
            "question": "Does the response address the user's actual request?",
            "scale": {"1": "Unhelpful.", "2": "Slightly helpful.", "3": "Somewhat helpful.", "4": "Helpful.", "5": "Very helpful."},
        },
        {
            "name": "accuracy",
            "question": "Is what the response says correct?",
            "scale": {"1": "Wrong.", "2": "Mostly wrong.", "3": "Mixed.", "4": "Mostly right.", "5": "Right."},
        },
    ],
}

#: Payloads that would run script if a judged text were ever rendered as markup.
SCRIPT_PAYLOAD = '<script>window.__pwned = 1; document.title = "pwned";</script>'
IMG_PAYLOAD = '<img src="x" onerror="window.__pwned = 2; document.title = \'pwned\'">'


def verdict_marker(sample_id: str) -> str:
    """A string that appears only in a sample's judge rationale (to detect a leak of the verdict)."""
    return f"JUDGE-RATIONALE-{sample_id}-SECRET"


def pair_sample(i: int, *, winner: str = "A", run_id: str = "run-w", a: str | None = None, b: str | None = None,
                prompt: str | None = None, rationale: str | None = None) -> AuditSample:
    """A pairwise decision ``i``; its rationale carries :func:`verdict_marker`."""
    sid = f"s-pair-{i}"
    item = Item(id=f"pair-{i}", prompt=prompt or f"Question {i}: what is {i} + {i}?",
                response_a=a or f"First answer {i}: {2 * i}.", response_b=b or f"Second answer {i}: {2 * i + 1}.")
    return AuditSample(
        sample_id=sid, run_id=run_id, judgment_key=f"k-pair-{i}", judgment_keys=[f"k-pair-{i}", f"k-pair-{i}-ba"],
        item_id=item.id, rubric=RubricRef(id="pair_quality", version=1, hash="rh-pair"), rubric_def=PAIR_RUBRIC,
        kind="pairwise", stratum="uniform", inclusion_prob=0.5, population=40,
        judge_input=[Message(role="system", content="You compare responses."), Message(role="user", content=f"judge pair {i}")],
        item=item,
        judge_output=JudgeOutput(status="scored", winner=winner, p_a=0.9 if winner == "A" else 0.1,  # type: ignore[arg-type]
                                 rationale=rationale or verdict_marker(sid), raw_output=f'{{"winner": "{winner}"}}'),
        judge_fingerprint="fp-1", rubric_hash="rh-pair", prompt_version="pv-1", seed=7,
    )


def point_sample(i: int, *, scores: dict[str, int] | None = None, run_id: str = "run-w") -> AuditSample:
    """A pointwise decision ``i`` on two criteria; its rationale carries :func:`verdict_marker`."""
    sid = f"s-point-{i}"
    item = Item(id=f"point-{i}", prompt=f"Explain topic {i} briefly.", response=f"Topic {i} is explained here.")
    return AuditSample(
        sample_id=sid, run_id=run_id, judgment_key=f"k-point-{i}", judgment_keys=[f"k-point-{i}"],
        item_id=item.id, rubric=RubricRef(id="helpfulness", version=1, hash="rh-point"), rubric_def=POINT_RUBRIC,
        kind="pointwise", stratum="low_margin", inclusion_prob=0.25, population=40,
        judge_input=[Message(role="user", content=f"judge point {i}")], item=item,
        judge_output=JudgeOutput(status="scored", scores=scores or {"helpfulness": 4, "accuracy": 2}, overall=0.5,
                                 rationale=verdict_marker(sid), raw_output="{}"),
        judge_fingerprint="fp-1", rubric_hash="rh-point", prompt_version="pv-1", seed=7,
    )


def payload_sample() -> AuditSample:
    """A pair whose prompt, responses and rationale try to run script."""
    return pair_sample(
        99, prompt="Say hi </div>" + SCRIPT_PAYLOAD, a=SCRIPT_PAYLOAD, b=IMG_PAYLOAD,
        rationale=verdict_marker("s-pair-99") + " " + SCRIPT_PAYLOAD + IMG_PAYLOAD,
    )


def make_store(path: Path, samples: list[AuditSample]) -> AuditStore:
    """A store holding ``samples``."""
    store = AuditStore(path)
    store.add_samples(samples)
    return store


class LiveServer:
    """The review app served by uvicorn in a thread on 127.0.0.1 and a free port."""

    def __init__(self, store_path: Path, overlap: float = 0.0) -> None:
        import uvicorn

        from judge.audit._web import create_app

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        app = create_app(store_path, overlap=overlap)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the review server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
