"""OpenAI-compatible HTTP backend: any server speaking ``/v1/chat/completions`` (e.g. ``vllm serve``).

Requests run concurrently up to ``concurrency``, with retries and exponential backoff on
connection errors, timeouts, 408/409/429 and 5xx (``Retry-After`` is honoured). One request that
still fails, or that the server refuses (4xx), fails alone: its completion carries the server's
message (``error_kind="backend"``) and the rest of the batch runs. Only what no request could
survive raises: an unreachable server (every request of the call), 401/403/404 (key, URL, model).

Length: when the served model's card (``/v1/models``) states ``max_model_len``, a prompt that may
not fit with its ``max_tokens`` (by a byte bound, see :func:`judge.backends._chat.prompt_token_bound`)
is counted exactly by the server's ``/tokenize`` (a vLLM extension) and refused as ``too_long``
without being sent. Without a card length, the server's own 400 "maximum context length" answer
is mapped to ``too_long``.

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
from judge.backends._base import (
    Completion,
    Prompt,
    TokenLogprob,
    as_param_list,
    failed,
    identity_hash,
    register_backend,
    split_prefill,
    too_long,
    too_long_message,
)
from judge.backends._chat import prompt_token_bound
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
# Answers that no other request of the job could escape: a bad key, a wrong URL or model name.
_FATAL_STATUS = {401, 403, 404}

# How servers word a prompt that does not fit (vLLM: "This model's maximum context length is 2048
# tokens. However, your prompt contains 2100 input tokens..."; "...longer than the maximum model
# length of 2048"; OpenAI: "This model's maximum context length is 8192 tokens...").
_CONTEXT_ERROR = re.compile(r"maximum (?:context|model) length|context length exceeded|context_length_exceeded", re.I)
_CONTEXT_NUMBER = re.compile(r"maximum (?:context|model) length (?:is |of )?\(?(\d+)", re.I)
_PROMPT_NUMBER = re.compile(
    r"prompt contains (?:at least )?(\d+) input tokens|prompt \(length (\d+)\)|input length \((\d+)\)", re.I
)


class _Unreachable(BackendError):
    """No answer from the server after every retry: fatal when no request of the call got one."""


class _Refused(BackendError):
    """An answer that every request would get (401/403/404): always fatal."""


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

    @classmethod
    def identity(cls, model: str, base_url: str = "http://127.0.0.1:8000/v1", **_: Any) -> str:
        """The judge identity of ``model`` served at ``base_url``, without asking the server."""
        return identity_hash(cls.name, stable_hash([model, base_url.rstrip("/")]))

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
        self.identity_args = {"model": model, "base_url": self.base_url}
        self.concurrency = concurrency
        self.max_retries = max_retries
        headers = {}
        key = os.environ.get(api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s, limits=limits)
        self._info: JudgeInfo | None = None
        #: The served model's context (its card's ``max_model_len``), known after :meth:`info`.
        self.context_length: int | None = None
        self._can_tokenize = True  # until the server answers /tokenize with 404
        self._context_read = False

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
        cls = BackendError if err.startswith("HTTP") else _Unreachable
        raise cls(f"{method} {url} failed after {self.max_retries + 1} attempt(s): {err}.{hint}")

    def _post(self, body: dict[str, Any]) -> dict[str, Any] | Completion:
        """The server's JSON answer, or the completion of a request it refused for its length."""
        r = self._request("POST", "/chat/completions", body)
        if r.status_code != 200:
            msg = _server_message(r)
            if r.status_code == 400 and _CONTEXT_ERROR.search(msg):
                return _too_long_from_server(msg, body["max_tokens"])
            cls = _Refused if r.status_code in _FATAL_STATUS else BackendError
            raise cls(f"{self.base_url}/chat/completions rejected the request (HTTP {r.status_code}): {msg}")
        try:
            return r.json()
        except ValueError:
            raise BackendError(f"{self.base_url}/chat/completions answered with non-JSON: {r.text[:300]!r}") from None

    def _count_tokens(self, body: dict[str, Any]) -> int | None:
        """The exact prompt tokens of a chat request by the server's ``/tokenize``; None without one."""
        if not self._can_tokenize:
            return None
        keys = ("model", "messages", "add_generation_prompt", "continue_final_message")
        try:
            r = self._client.post(f"{self._root()}/tokenize", json={k: body[k] for k in keys if k in body})
        except Exception:
            return None  # the chat request itself will say what is wrong with the server
        if r.status_code == 404:
            self._can_tokenize = False
        try:
            return int(r.json()["count"]) if r.status_code == 200 else None
        except (ValueError, KeyError, TypeError):
            return None

    def _read_context(self) -> None:
        """The served model's ``max_model_len`` from its card, asked once (unknown if not stated)."""
        if self._context_read or self.context_length is not None:
            return
        self._context_read = True
        try:
            r = self._client.get("/models", timeout=10.0)
            cards = r.json().get("data", []) if r.status_code == 200 else []
        except Exception:
            return
        card = next((m for m in cards if isinstance(m, dict) and m.get("id") == self.model), {})
        if isinstance(card.get("max_model_len"), int) and card["max_model_len"] > 0:
            self.context_length = card["max_model_len"]

    def _root(self) -> str:
        return self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url

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
                if isinstance(card.get("max_model_len"), int) and card["max_model_len"] > 0:
                    self.context_length = card["max_model_len"]
        version = "openai-compatible"
        root = self._root()
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
        """One request: refused when it cannot fit, failed alone when the server fails on it."""
        body = self._body(prompt, p)
        try:
            ctx = self.context_length
            if ctx is not None and prompt_token_bound(body["messages"]) + p.max_tokens > ctx:
                n = self._count_tokens(body)  # near or over the limit: count exactly
                if n is not None and n + p.max_tokens > ctx:
                    return too_long(n, p.max_tokens, ctx)
            data = self._post(body)
            return data if isinstance(data, Completion) else self._completion(data)
        except (_Unreachable, _Refused):
            raise
        except BackendError as exc:
            return failed(str(exc))

    def _completion(self, data: dict[str, Any]) -> Completion:
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
        """Complete every prompt concurrently; see the module docstring for what fails alone.

        Raises:
            BackendError: the server is unreachable, or refuses the key, the URL or the model.
        """
        plist = as_param_list(params, len(prompts))
        if not prompts:
            return []
        self._read_context()

        def one(prompt: Prompt, p: SamplingParams) -> Completion | _Unreachable:
            try:
                return self._one(prompt, p)
            except _Unreachable as exc:
                return exc

        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(prompts))) as pool:
            results = list(pool.map(one, prompts, plist))
        lost = [r for r in results if isinstance(r, _Unreachable)]
        if lost and len(lost) == len(results):
            raise BackendError(str(lost[0])) from lost[0]  # the server is gone, not one request
        return [failed(str(r)) if isinstance(r, _Unreachable) else r for r in results]

    def close(self) -> None:
        self._client.close()


def _too_long_from_server(message: str, max_tokens: int) -> Completion:
    """The ``too_long`` completion for a server's own context-length refusal, with its numbers."""
    ctx, prompt = _CONTEXT_NUMBER.search(message), _PROMPT_NUMBER.search(message)
    if ctx and prompt:
        n = int(next(g for g in prompt.groups() if g))
        if "at least" in prompt.group(0):  # vLLM stops tokenizing one token past the limit
            msg = too_long_message(n, max_tokens, int(ctx.group(1))).replace("needs ", "needs at least ", 1)
            return Completion(text="", prompt_tokens=n, error=msg, error_kind="too_long")
        return too_long(n, max_tokens, int(ctx.group(1)))
    return Completion(text="", error=f"the server refused the prompt's length: {message[:500]}", error_kind="too_long")
