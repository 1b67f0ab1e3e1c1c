"""OpenAI-compatible HTTP backend: any server speaking ``/v1/chat/completions`` (e.g. ``vllm serve``).

Requests run concurrently up to ``concurrency``, with retries and exponential backoff on
connection errors, 429 and 5xx. Structured outputs use ``response_format`` (JSON schema) and vLLM's
``structured_outputs`` extension (choices). A final assistant message is continued with vLLM's
``continue_final_message`` extension.
"""

from __future__ import annotations

import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from judge._errors import BackendError
from judge.backends._base import Completion, Prompt, TokenLogprob, as_param_list, register_backend, split_prefill
from judge.records import JudgeInfo, SamplingParams, stable_hash

# Chat-control markers of common templates; broken up so judged text cannot open a fake turn on a
# server whose tokenizer we do not have.
_CONTROL = re.compile(r"<\|[A-Za-z0-9_\-]{1,40}\|>|</?s>|\[/?INST\]|<(?:start|end)_of_turn>")


def _neutralize(text: str) -> str:
    return _CONTROL.sub(lambda m: m.group(0)[0] + "\u200b" + m.group(0)[1:], text)


@register_backend("openai")
class OpenAIBackend:
    """A model behind an OpenAI-compatible server.

    Args:
        model: the served model name.
        base_url: server root including ``/v1`` (e.g. ``http://127.0.0.1:8000/v1``).
        api_key_env: environment variable holding the API key (optional for local servers).
        concurrency: requests in flight at once.
        timeout_s: per-request timeout.
        max_retries: retries per request on transient failures.
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str = "http://127.0.0.1:8000/v1",
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 16,
        timeout_s: float = 120.0,
        max_retries: int = 4,
    ) -> None:
        import httpx

        self.model = model
        self.base_url = base_url.rstrip("/")
        self.concurrency = concurrency
        self.max_retries = max_retries
        headers = {}
        key = os.environ.get(api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s)
        self._server_model_info: dict[str, Any] | None = None

    def info(self) -> JudgeInfo:
        if self._server_model_info is None:
            try:
                r = self._client.get("/models")
                r.raise_for_status()
                self._server_model_info = next(
                    (m for m in r.json().get("data", []) if m.get("id") == self.model), {"id": self.model}
                )
            except Exception:
                self._server_model_info = {"id": self.model}
        return JudgeInfo(
            model=self.model,
            model_hash=stable_hash([self.base_url, self._server_model_info]),
            backend=self.name,
            backend_version="openai-compatible",
        )

    def _body(self, prompt: Prompt, p: SamplingParams) -> dict[str, Any]:
        msgs, prefill = split_prefill(prompt)
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m["role"], "content": _neutralize(m["content"])} for m in msgs],
            "max_tokens": p.max_tokens,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "seed": p.seed,
        }
        if p.stop:
            body["stop"] = p.stop
        if p.logprobs is not None:
            body["logprobs"] = True
            body["top_logprobs"] = p.logprobs
        if p.json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "verdict", "schema": p.json_schema, "strict": True},
            }
        elif p.choices is not None:
            body["structured_outputs"] = {"choice": p.choices}
        if prefill is not None:
            body["continue_final_message"] = True
            body["add_generation_prompt"] = False
        return body

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        import httpx

        delay = 0.5
        for attempt in range(self.max_retries + 1):
            try:
                r = self._client.post("/chat/completions", json=body)
            except httpx.TransportError as exc:
                err = f"{type(exc).__name__}: {exc}"
            else:
                if r.status_code == 200:
                    return r.json()
                err = f"HTTP {r.status_code}: {r.text[:300]}"
                if r.status_code not in (408, 409, 429) and r.status_code < 500:
                    raise BackendError(f"{self.base_url}/chat/completions rejected the request: {err}")
            if attempt < self.max_retries:
                time.sleep(delay)
                delay = min(delay * 2, 8.0)
        raise BackendError(f"{self.base_url}/chat/completions failed after {self.max_retries + 1} attempts: {err}")

    def _one(self, prompt: Prompt, p: SamplingParams) -> Completion:
        data = self._post(self._body(prompt, p))
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        tokens = None
        lp = choice.get("logprobs")
        if lp and lp.get("content"):
            tokens = [
                TokenLogprob(
                    token=t["token"],
                    logprob=t["logprob"],
                    top={a["token"]: a["logprob"] for a in t.get("top_logprobs", [])},
                )
                for t in lp["content"]
            ]
        return Completion(
            text=choice["message"].get("content") or "",
            tokens=tokens,
            prompt_tokens=usage.get("prompt_tokens", 0),
            completion_tokens=usage.get("completion_tokens", 0),
            finish_reason=choice.get("finish_reason"),
        )

    def generate(self, prompts: list[Prompt], params: SamplingParams | list[SamplingParams]) -> list[Completion]:
        plist = as_param_list(params, len(prompts))
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._one, prompts, plist))

    def close(self) -> None:
        self._client.close()
