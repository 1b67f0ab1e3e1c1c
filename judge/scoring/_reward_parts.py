"""The pieces of the judge reward that know nothing of judging: its records, TRL's texts, the memory cache."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from judge.core._errors import DataError
from judge.core._records import Judgment

__all__ = ["Memory", "RewardRecord", "RewardStats", "completion_text", "prompt_text"]


class RewardStats(BaseModel):
    """What one call of a judge reward did."""

    model_config = ConfigDict(extra="forbid")

    completions: int = Field(description="Completions rewarded in the call.")
    scored: int = Field(description="Completions that got a reward (not None).")
    abstain_rate: float = Field(description="Share of the completions left at None (unscored).")
    score_mean: float | None = Field(default=None, description="Mean reward of the scored completions.")
    score_std: float | None = Field(default=None, description="Their sample std (as TRL's); None below two.")
    group_std: float | None = Field(
        default=None, description="Mean over prompts with two or more scored completions of their rewards' std."
    )
    requests: int = Field(description="Distinct judge requests the call needed.")
    cache_hits: int = Field(description="Of those, requests answered by the cache.")
    cache_hit_rate: float = Field(description="cache_hits / requests (0 when there were none).")
    judge_s: float = Field(description="Wall time spent judging the requests the cache did not answer.")


class RewardRecord(BaseModel):
    """One completion of the last call, as the judge saw it."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(description="The prompt as the judge was shown it.")
    completion: str = Field(description="The completion as the judge was shown it.")
    reward: float | None = Field(description="The reward returned; None when unscored.")
    error: str | None = Field(default=None, description="Why the reward is None.")
    keys: list[str] = Field(default_factory=list, description="The judgments' request keys it was read from.")


def _content(content: Any) -> str:
    """The text of a message's content (a string, or a list of text blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, dict) and block.get("type") == "text":
                parts.append(str(block.get("text", "")))
            else:
                kind = block.get("type") if isinstance(block, dict) else type(block).__name__
                raise DataError(f"the judge reads text; a message holds a content block of type {kind!r}")
        return "".join(parts)
    raise DataError(f"a message's content is text or a list of text blocks, got {type(content).__name__}")


def prompt_text(prompt: Any) -> str:
    """A TRL prompt as the judge's ``prompt``: the user turn, or the conversation as ``role: text`` turns.

    System messages are not shown to the judge: its rubric prompt has no place for them.
    """
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and all(isinstance(m, dict) for m in prompt):
        turns = [m for m in prompt if m.get("role") != "system"]
        if len(turns) == 1 and turns[0].get("role") == "user":
            return _content(turns[0].get("content", ""))
        return "\n\n".join(f"{m.get('role')}: {_content(m.get('content', ''))}" for m in turns)
    raise DataError(f"a prompt is text or a list of chat messages, got {type(prompt).__name__}")


def completion_text(completion: Any) -> str:
    """A TRL completion as the judged response: the text, or its assistant messages' text."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and all(isinstance(m, dict) for m in completion):
        return "\n".join(_content(m.get("content", "")) for m in completion if m.get("role", "assistant") == "assistant")
    raise DataError(f"a completion is text or a list of chat messages, got {type(completion).__name__}")


class Memory:
    """Request key -> Judgment, least recently used out beyond ``size``; safe across threads."""

    def __init__(self, size: int) -> None:
        self._entries: OrderedDict[str, Judgment] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: str) -> Judgment | None:
        with self._lock:
            j = self._entries.get(key)
            if j is not None:
                self._entries.move_to_end(key)
            return j

    def put(self, judgment: Judgment) -> None:
        with self._lock:
            self._entries[judgment.key] = judgment
            self._entries.move_to_end(judgment.key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
