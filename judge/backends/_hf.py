"""transformers backend: batched greedy or sampled generation with left padding.

Structured outputs use xgrammar's logits processor when xgrammar is installed (it comes with
vLLM); logprobs are read from the raw logits, as vLLM reports them.
"""

from __future__ import annotations

from typing import Any

from judge.core._env import apply_runtime_defaults
from judge.backends._base import (
    Completion,
    Prompt,
    TokenLogprob,
    as_param_list,
    failed,
    fingerprint_model_dir,
    identity_hash,
    register_backend,
    require,
    too_long,
)
from judge.backends._chat import render_chat_ids
from judge.core._errors import BackendError
from judge.core._records import JudgeInfo, SamplingParams


def grammar_for(params: SamplingParams) -> str | None:
    """An EBNF (xgrammar dialect) for ``choices``, or None."""
    if params.choices is None:
        return None
    import json

    return "root ::= " + " | ".join(json.dumps(c) for c in params.choices)


@register_backend("hf")
class HFBackend:
    """Local transformers model.

    Args:
        model: path of a local Hugging Face model directory.
        dtype: ``bfloat16`` (fast on CPUs with AVX512-BF16) or ``float32``.
        batch_size: prompts per forward pass.
        device: ``cpu`` or ``cuda``.
        max_model_len: longest prompt + completion accepted (capped by the model's own maximum
            positions and its tokenizer's ``model_max_length``). A request whose prompt (chat
            template and prefill included) plus ``max_tokens`` exceeds it is refused as
            ``too_long`` and not run; the rest of its batch runs. None: the model's own maximum.
    """

    name = "hf"

    @classmethod
    def identity(cls, model: str, dtype: str = "bfloat16", **_: Any) -> str:
        """The judge identity of this backend on ``model`` (a directory), without loading it."""
        return identity_hash(cls.name, fingerprint_model_dir(model), dtype)

    def __init__(
        self,
        model: str,
        dtype: str = "bfloat16",
        batch_size: int = 16,
        device: str = "cpu",
        max_model_len: int | None = 4096,
    ) -> None:
        apply_runtime_defaults()
        torch = require("torch", "torch")
        transformers = require("transformers", "transformers")
        self._torch = torch
        self.model_path = str(model)
        self.dtype = dtype
        self.identity_args = {"model": self.model_path, "dtype": dtype}
        self.batch_size = batch_size
        self.device = device
        self.max_model_len = max_model_len
        self._model_hash = fingerprint_model_dir(model)
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(model)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = transformers.AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, dtype))
        self.model.to(device).eval()
        self._xgr_compiler: Any = None
        self._vocab_size = self.model.get_output_embeddings().weight.shape[0]
        self.context_length = _context_length(max_model_len, self.model.config, self.tokenizer)

    def info(self) -> JudgeInfo:
        import transformers

        return JudgeInfo(
            model=self.model_path,
            model_hash=self._model_hash,
            backend=self.name,
            backend_version=f"transformers {transformers.__version__}",
            dtype=self.dtype,
        )

    def _logits_processor(self, params: SamplingParams) -> Any:
        if params.json_schema is None and params.choices is None:
            return None
        try:
            import xgrammar as xgr
        except ImportError:
            return None  # unconstrained; the scorer still validates the output
        import json

        if self._xgr_compiler is None:
            info = xgr.TokenizerInfo.from_huggingface(self.tokenizer, vocab_size=self._vocab_size)
            self._xgr_compiler = xgr.GrammarCompiler(info)
        if params.json_schema is not None:
            compiled = self._xgr_compiler.compile_json_schema(json.dumps(params.json_schema))
        else:
            compiled = self._xgr_compiler.compile_grammar(grammar_for(params))
        return xgr.contrib.hf.LogitsProcessor(compiled)

    def generate(self, prompts: list[Prompt], params: SamplingParams | list[SamplingParams]) -> list[Completion]:
        """Complete every prompt; one that cannot fit or fails on its own gets an error completion.

        Each prompt's exact token count is checked against ``context_length`` before batching; one
        that cannot fit with its ``max_tokens`` is refused (``too_long``). A batch that raises is
        run again prompt by prompt, so only the prompts that fail alone fail (``backend``).
        """
        plist = as_param_list(params, len(prompts))
        out: list[Completion | None] = [None] * len(prompts)
        groups: dict[str, list[tuple[int, list[int]]]] = {}
        for i, (prompt, p) in enumerate(zip(prompts, plist)):
            try:
                ids = render_chat_ids(self.tokenizer, prompt)
            except Exception as exc:  # a template that refuses this one prompt
                out[i] = failed(exc)
                continue
            if len(ids) + p.max_tokens > self.context_length:
                out[i] = too_long(len(ids), p.max_tokens, self.context_length)
                continue
            groups.setdefault(p.model_dump_json(), []).append((i, ids))
        for group in groups.values():
            for start in range(0, len(group), self.batch_size):
                chunk = group[start : start + self.batch_size]
                p = plist[chunk[0][0]]
                try:
                    results = self._generate_batch([ids for _, ids in chunk], p)
                except Exception:
                    results = [self._generate_one(ids, p) for _, ids in chunk]
                for (i, _), r in zip(chunk, results):
                    out[i] = r
        return [c for c in out if c is not None]

    def _generate_one(self, ids: list[int], params: SamplingParams) -> Completion:
        try:
            return self._generate_batch([ids], params)[0]
        except Exception as exc:
            return failed(exc)

    def _generate_batch(self, ids: list[list[int]], params: SamplingParams) -> list[Completion]:
        torch = self._torch
        width = max(len(x) for x in ids)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids], device=self.device)
        attention = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], device=self.device)
        kwargs: dict[str, Any] = dict(
            max_new_tokens=params.max_tokens,
            do_sample=params.temperature > 0,
            pad_token_id=pad,
            return_dict_in_generate=True,
            output_logits=params.logprobs is not None,
        )
        if params.temperature > 0:
            kwargs.update(temperature=params.temperature, top_p=params.top_p)
            torch.manual_seed(params.seed)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if params.stop:
            kwargs.update(stop_strings=params.stop, tokenizer=self.tokenizer)
        proc = self._logits_processor(params)
        if proc is not None:
            kwargs["logits_processor"] = [proc]
        with torch.inference_mode():
            gen = self.model.generate(input_ids=input_ids, attention_mask=attention, **kwargs)
        new = gen.sequences[:, width:].tolist()
        eos = set(self._eos_ids())
        completions = []
        for row, seq in enumerate(new):
            n = len(seq)
            finish = "length"
            for j, tok in enumerate(seq):
                if tok in eos:
                    n, finish = j, "stop"
                    break
            if finish == "length" and any(t == pad for t in seq) and pad in eos:
                finish = "stop"
            toks = seq[:n]
            text = self.tokenizer.decode(toks, skip_special_tokens=True)
            if params.stop:
                for s in params.stop:
                    if s in text:
                        text, finish = text[: text.index(s)], "stop"
            token_lps = None
            if params.logprobs is not None:
                token_lps = []
                for j, tok in enumerate(toks):
                    lp = torch.log_softmax(gen.logits[j][row].float(), dim=-1)
                    k = max(params.logprobs, 1)
                    top_v, top_i = lp.topk(k)
                    top = {}
                    for v, t in zip(top_v.tolist(), top_i.tolist()):
                        top.setdefault(self.tokenizer.decode([t]), v)
                    token_lps.append(
                        TokenLogprob(token=self.tokenizer.decode([tok]), logprob=float(lp[tok]), top=top)
                    )
            completions.append(
                Completion(
                    text=text,
                    tokens=token_lps,
                    prompt_tokens=len(ids[row]),
                    completion_tokens=len(toks) + (1 if finish == "stop" and n < len(seq) else 0),
                    finish_reason=finish,
                )
            )
        return completions

    def _eos_ids(self) -> list[int]:
        cfg = self.model.generation_config
        eos = cfg.eos_token_id if cfg is not None else None
        if eos is None:
            eos = self.tokenizer.eos_token_id
        return list(eos) if isinstance(eos, (list, tuple)) else [eos]

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]
        import gc

        gc.collect()


def _context_length(max_model_len: int | None, config: Any, tokenizer: Any) -> int:
    """The tightest of the configured length, the model's positions and the tokenizer's maximum."""
    limits = [n for n in (max_model_len, getattr(config, "max_position_embeddings", None)) if n]
    # Tokenizers without a maximum report a huge sentinel (int(1e30)); it is not a limit.
    tok_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_max, int) and 0 < tok_max < 10**8:
        limits.append(tok_max)
    if not limits:
        raise BackendError("backend 'hf' needs the option max_model_len: the model states no maximum length")
    return int(min(limits))
