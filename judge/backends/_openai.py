"""OpenAI-compatible HTTP backend: any server speaking ``/v1/chat/completions`` (e.g. ``vllm serve``).

Requests run concurrently up to ``concurrency``, with retries and exponential backoff on
connection errors, timeouts, 408/409/429 and 5xx (``Retry-After`` is honoured). Other 4xx answers
are the caller's mistake and fail at once with the server's own message.

Request fields (checked against vLLM's OpenAI server, ``vllm serve``):

- JSON-schema verdicts: ``response_format = {"type": "json_schema", "json_schema": {"name",
  "schema", "strict"}}`` (the OpenAI form; vLLM maps it to its structured outputs).
- Choices: vLLM's ``structured_outputs = {"choice": [...]}`` extension.
- Logprobs: ``logprobs: true`` + ``top_logprobs: k``; they come back in
  ``choices[0].logprobs.content[i].{token, logprob, top_logprobs}``.
- A final assistant message (a prefill) is continued with vLLM's ``continue_final_message: true``
  and ``add_generation_prompt: false``; only the continuation is returned, as with the local
  backends.

Start a local server with ``judgeloop serve`` (see :mod:`judge.serve`).
"""

from __future__ import annotations

import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from judge.core._errors import BackendError
from judge.backends._base import Completion, Prompt, TokenLogprob, as_param_list, register_backend, split_prefill
from judge.core._records import JudgeInfo, SamplingParams, stable_hash

# Chat-control markers of common templates; broken up so judged text cannot open a fake turn on a
# server whose tokenizer we do not have.
_CONTROL = re.compile(r"<\|[A-Za-z0-9_\-]{1,40}\|>|</?s>|\[/?INST\]|<(?:start|end)_of_turn>")

# vLLM reports tokens that structured outputs made impossible (logprob -inf, which JSON cannot
# carry) as -9999.0. They carry no information; they are dropped from the top-k.
_MASKED_LOGPROB = -9999.0

# Fields of a served model's card that identify it; ``created`` and ``permission`` change with
# every request and would make the fingerprint meaningless.
_MODEL_CARD_KEYS = ("id", "root", "parent", "owned_by", "max_model_len")

_RETRY_STATUS = {408, 409, 429}


def _neutralize(text: str) -> str:
    return _CONTROL.sub(lambda m: m.group(0)[0] + "\u200b" + m.group(0)[1:], text)


def _server_message(response: Any) -> str:
    """The error message a server put in its JSON body, or the start of the raw body."""
    try:
        err = response.json().get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
    except Exception:
        pass
    return response.text[:300]


@register_backend("openai")
class OpenAIBackend:
    """A model behind an OpenAI-compatible server.

    Args:
        model: the served model name (``judgeloop serve --model bundled`` serves ``bundled``).
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

        if concurrency < 1:
            raise BackendError(f"concurrency must be >= 1, got {concurrency}")
        if max_retries < 0:
            raise BackendError(f"max_retries must be >= 0, got {max_retries}")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.concurrency = concurrency
        self.max_retries = max_retries
        headers = {}
        key = os.environ.get(api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s, limits=limits)
        self._info: JudgeInfo | None = None

    # ------------------------------------------------------------------------------------------
    # HTTP

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Send one request with retries; return the ``httpx.Response`` of a final answer.

        Transient failures (no connection, timeouts, 408/409/429, 5xx) are retried with
        exponential backoff; any other answer, success or not, is returned to the caller.
        """
        import httpx

        url = f"{self.base_url}{path}"
        delay = 0.5
        err = ""
        for attempt in range(self.max_retries + 1):
            wait = delay
            try:
                r = self._client.request(method, path, json=body)
            except httpx.TransportError as exc:
                err = f"{type(exc).__name__}: {exc}"
            else:
                if r.status_code not in _RETRY_STATUS and r.status_code < 500:
                    return r
                err = f"HTTP {r.status_code}: {_server_message(r)}"
                retry_after = r.headers.get("retry-after", "")
                if retry_after.replace(".", "", 1).isdigit():
                    wait = min(float(retry_after), 60.0)
            if attempt < self.max_retries:
                time.sleep(wait)
                delay = min(delay * 2, 8.0)
        hint = (
            " Is the server running at that address? Start one with `judgeloop serve`, or fix "
            "judge.options.base_url."
            if not err.startswith("HTTP")
            else " The server keeps failing; see its log."
        )
        raise BackendError(f"{method} {url} failed after {self.max_retries + 1} attempt(s): {err}.{hint}")

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        r = self._request("POST", "/chat/completions", body)
        if r.status_code != 200:
            raise BackendError(
                f"{self.base_url}/chat/completions rejected the request (HTTP {r.status_code}): {_server_message(r)}"
            )
        try:
            return r.json()
        except ValueError:
            raise BackendError(f"{self.base_url}/chat/completions answered with non-JSON: {r.text[:300]!r}") from None

    # ------------------------------------------------------------------------------------------
    # Backend protocol

    def info(self) -> JudgeInfo:
        """Identify the served model from the server's ``/models`` card (and ``/version``).

        Raises:
            BackendError: the server is unreachable, or does not serve ``model``.
        """
        if self._info is not None:
            return self._info
        card: dict[str, Any] = {"id": self.model}
        r = self._request("GET", "/models")
        if r.status_code == 200:
            try:
                served = r.json().get("data", [])
            except ValueError:
                served = []
            match = next((m for m in served if isinstance(m, dict) and m.get("id") == self.model), None)
            if served and match is None:
                names = ", ".join(str(m.get("id")) for m in served if isinstance(m, dict))
                raise BackendError(
                    f"{self.base_url} does not serve model {self.model!r}; it serves: {names}. "
                    "Set judge.model to one of these."
                )
            if match is not None:
                card = {k: match.get(k) for k in _MODEL_CARD_KEYS if match.get(k) is not None}
        version = "openai-compatible"
        root = self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url
        try:
            v = self._client.get(f"{root}/version", timeout=5.0)
            if v.status_code == 200 and isinstance(v.json(), dict) and v.json().get("version"):
                version = f"openai-compatible (server {v.json()['version']})"
        except Exception:  # /version is a vLLM extension; other servers may lack it
            pass
        self._info = JudgeInfo(
            model=self.model,
            model_hash=stable_hash([self.base_url, card]),
            backend=self.name,
            backend_version=version,
        )
        return self._info

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

    def _one(self, prompt: Prompt, p: SamplingParams) -> Completion:
        data = self._post(self._body(prompt, p))
        try:
            choice = data["choices"][0]
            usage = data.get("usage") or {}
            tokens = None
            lp = choice.get("logprobs")
            if lp and lp.get("content"):
                tokens = [
                    TokenLogprob(
                        token=t["token"],
                        logprob=t["logprob"],
                        top={
                            a["token"]: a["logprob"]
                            for a in t.get("top_logprobs") or []
                            if a["logprob"] > _MASKED_LOGPROB
                        },
                    )
                    for t in lp["content"]
                ]
            return Completion(
                text=(choice.get("message") or {}).get("content") or "",
                tokens=tokens,
                prompt_tokens=usage.get("prompt_tokens", 0),
                completion_tokens=usage.get("completion_tokens", 0),
                finish_reason=choice.get("finish_reason"),
            )
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise BackendError(
                f"{self.base_url}/chat/completions answered in an unexpected shape "
                f"({type(exc).__name__}: {exc}): {str(data)[:300]}"
            ) from None

    def generate(self, prompts: list[Prompt], params: SamplingParams | list[SamplingParams]) -> list[Completion]:
        plist = as_param_list(params, len(prompts))
        if not prompts:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(prompts))) as pool:
            return list(pool.map(self._one, prompts, plist))

    def close(self) -> None:
        self._client.close()
