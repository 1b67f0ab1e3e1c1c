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
    fingerprint_model_dir,
    register_backend,
    require,
)
from judge.backends._chat import render_chat_ids
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
        max_model_len: longest prompt + completion accepted.
    """

    name = "hf"

    def __init__(
        self,
        model: str,
        dtype: str = "bfloat16",
        batch_size: int = 16,
        device: str = "cpu",
        max_model_len: int = 4096,
    ) -> None:
        apply_runtime_defaults()
        torch = require("torch", "torch")
        transformers = require("transformers", "transformers")
        self._torch = torch
        self.model_path = str(model)
        self.dtype = dtype
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
        plist = as_param_list(params, len(prompts))
        out: list[Completion | None] = [None] * len(prompts)
        groups: dict[str, list[int]] = {}
        for i, p in enumerate(plist):
            groups.setdefault(p.model_dump_json(), []).append(i)
        for idxs in groups.values():
            for start in range(0, len(idxs), self.batch_size):
                chunk = idxs[start : start + self.batch_size]
                results = self._generate_batch([prompts[i] for i in chunk], plist[chunk[0]])
                for i, r in zip(chunk, results):
                    out[i] = r
        return [c for c in out if c is not None]

    def _generate_batch(self, prompts: list[Prompt], params: SamplingParams) -> list[Completion]:
        torch = self._torch
        ids = [render_chat_ids(self.tokenizer, p) for p in prompts]
        width = max(len(x) for x in ids)
        if width + params.max_tokens > self.max_model_len:
            too_long = max(ids, key=len)
            from judge.core._errors import BackendError

            raise BackendError(
                f"prompt of {len(too_long)} tokens + max_tokens {params.max_tokens} exceeds "
                f"max_model_len {self.max_model_len}"
            )
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

