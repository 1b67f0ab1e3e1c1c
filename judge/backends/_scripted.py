"""A backend that answers from a script: for testing scorers and aggregation without a model.

Like httpx's ``MockTransport``, this is a product feature: users test their own rubrics' parsing
and aggregation with it. It never pretends to be a real judge: its ``JudgeInfo`` says ``scripted``.
"""

from __future__ import annotations

from typing import Callable, Iterable

from judge.backends._base import Completion, Prompt, as_param_list, register_backend
from judge.core._records import JudgeInfo, SamplingParams, stable_hash

Responder = Callable[[Prompt, SamplingParams], "Completion | str"]


@register_backend("scripted")
class ScriptedBackend:
    """Returns scripted completions.

    Args:
        responder: a function ``(prompt, params) -> Completion | str``, or an iterable of
            completions/texts consumed in call order.
        model: the name recorded in judgments.
    """

    name = "scripted"

    def __init__(self, responder: Responder | Iterable[Completion | str], model: str = "scripted") -> None:
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
        self.calls: list[tuple[Prompt, SamplingParams]] = []

    def info(self) -> JudgeInfo:
        return JudgeInfo(model=self.model, model_hash=stable_hash(self.model), backend=self.name)

    def generate(self, prompts: list[Prompt], params: SamplingParams | list[SamplingParams]) -> list[Completion]:
        out = []
        for prompt, p in zip(prompts, as_param_list(params, len(prompts))):
            self.calls.append((prompt, p))
            r = self._fn(prompt, p)
            if isinstance(r, str):
                r = Completion(text=r, prompt_tokens=sum(len(m.content.split()) for m in prompt),
                               completion_tokens=len(r.split()), finish_reason="stop")
            out.append(r)
        return out

    def close(self) -> None:
        pass
