"""A backend that answers from a script: for testing scorers and aggregation without a model.

Like httpx's ``MockTransport``, this is a product feature: users test their own rubrics' parsing
and aggregation with it. It never pretends to be a real judge: its ``JudgeInfo`` says ``scripted``.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from judge.backends._base import (
    Completion,
    ErrorKind,
    Prompt,
    as_param_list,
    failed,
    identity_hash,
    register_backend,
    too_long,
)
from judge.core._records import JudgeInfo, SamplingParams, stable_hash

Responder = Callable[[Prompt, SamplingParams], "Completion | str"]
#: ``(prompt, params) -> None | "too_long" | "backend"``: which requests fail, and how.
FailWhen = Callable[[Prompt, SamplingParams], "ErrorKind | None"]


@register_backend("scripted")
class ScriptedBackend:
    """Returns scripted completions.

    Args:
        responder: a function ``(prompt, params) -> Completion | str``, or an iterable of
            completions/texts consumed in call order.
        model: the name recorded in judgments.
        fail: ``(prompt, params) -> None | "too_long" | "backend"``: the requests that fail the way
            a real backend's would (one completion with ``error`` and ``error_kind``, the rest of
            the batch answered). A failed request does not consume a scripted response.
        max_model_len: a context length: a request whose prompt words (the scripted token
            count) plus ``max_tokens`` exceed it is ``too_long``, as on a real backend.
    """

    name = "scripted"

    @classmethod
    def identity(cls, model: str = "scripted", **_: Any) -> str:
        """The identity of a script named ``model``: the same as its info() gives."""
        return identity_hash(cls.name, stable_hash(model))

    def __init__(
        self,
        responder: Responder | Iterable[Completion | str],
        model: str = "scripted",
        fail: FailWhen | None = None,
        max_model_len: int | None = None,
    ) -> None:
        if max_model_len is not None and max_model_len < 1:
            raise ValueError(f"max_model_len must be >= 1, got {max_model_len}")
        self._fail = fail
        self.context_length = max_model_len
        if callable(responder):
            self._fn: Responder = responder
        else:
            queue = list(responder)

            def _next(prompt: Prompt, params: SamplingParams) -> Completion | str:
                if not queue:
                    raise RuntimeError("scripted backend ran out of responses")
                return queue.pop(0)

            self._fn = _next
        self.model = model
        self.identity_args = {"model": model}
        self.calls: list[tuple[Prompt, SamplingParams]] = []

    def info(self) -> JudgeInfo:
        return JudgeInfo(model=self.model, model_hash=stable_hash(self.model), backend=self.name)

    def generate(self, prompts: list[Prompt], params: SamplingParams | list[SamplingParams]) -> list[Completion]:
        out = []
        for prompt, p in zip(prompts, as_param_list(params, len(prompts))):
            self.calls.append((prompt, p))
            n = sum(len(m.content.split()) for m in prompt)  # the script's token count: words
            kind = self._fail(prompt, p) if self._fail is not None else None
            if kind is None and self.context_length is not None and n + p.max_tokens > self.context_length:
                kind = "too_long"
            if kind == "too_long":
                ctx = self.context_length if self.context_length is not None else n + p.max_tokens - 1
                out.append(too_long(n, p.max_tokens, ctx))
                continue
            if kind == "backend":
                out.append(failed("scripted failure of this request"))
                continue
            if kind is not None:
                raise ValueError(f"fail returned {kind!r}; expected None, 'too_long' or 'backend'")
            r = self._fn(prompt, p)
            if isinstance(r, str):
                r = Completion(text=r, prompt_tokens=n, completion_tokens=len(r.split()), finish_reason="stop")
            out.append(r)
        return out

    def close(self) -> None:
        pass
