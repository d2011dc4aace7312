"""A vLLM policy: token-id prompts, one `generate` call per round, prefix caching on."""

from __future__ import annotations

import os
from pathlib import Path

from tdrm_search.policies.base import GenerateOutput, Sample, SampleRequest
from tdrm_search.policies.prompt import encode_question


def on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


ENGINES: dict[tuple, object] = {}  # every engine make_llm built, alive until the process ends


def make_llm(model: str | Path, seed: int = 0, **engine_kwargs):
    """A `vllm.LLM` with defaults that work on this machine's CPU build as well as on a GPU.

    On CPU: the engine runs in-process (fast start, seedable), a 1 GiB KV cache unless
    VLLM_CPU_KVCACHE_SPACE says otherwise, and 32-token blocks so short prefixes hit the prefix cache.
    Engines live for the process: the same model and options return the engine already built, and none is
    ever garbage-collected, because an in-process engine's teardown breaks every other live engine (vLLM's
    per-process parallel state: "pipeline model parallel group is not initialized").
    """
    key = (
        str(Path(model).resolve()) if Path(model).exists() else str(model),
        seed,
        tuple(sorted((k, repr(v)) for k, v in engine_kwargs.items())),
    )
    if key not in ENGINES:
        ENGINES[key] = build_llm(model, seed, **engine_kwargs)
    return ENGINES[key]


def build_llm(model: str | Path, seed: int, **engine_kwargs):
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    cpu = on_cpu()
    if cpu:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from vllm import LLM

    defaults = dict(seed=seed, enable_prefix_caching=True, gpu_memory_utilization=0.2 if cpu else 0.4)
    if cpu:
        defaults.update(block_size=32, dtype="float32")
    return LLM(model=str(model), **{**defaults, **engine_kwargs})


def finish_reason(output) -> str:
    if output.finish_reason == "length":
        return "length"
    return "stop" if isinstance(output.stop_reason, str) else "eos"


def sampling_params(request: SampleRequest, seed: int | None = None):
    """One sample of `request` (n=1: each sample is its own engine request), stop text kept in the output."""
    from vllm import SamplingParams

    return SamplingParams(
        temperature=request.temperature,
        top_p=request.top_p,
        max_tokens=request.max_tokens,
        stop=[request.stop] if request.stop else None,
        include_stop_str_in_output=True,
        seed=seed,
    )


class VLLMPolicy:
    """Wraps a `vllm.LLM` (or builds one from a model path with `make_llm`)."""

    def __init__(self, llm, *, prompt_template: str | None = None, **engine_kwargs):
        self.llm = make_llm(llm, **engine_kwargs) if isinstance(llm, (str, Path)) else llm
        self.tokenizer = self.llm.get_tokenizer()
        self.prompt_template = prompt_template
        # The CPU sampler crashes on per-request seeds; there the in-process engine uses torch's global RNG.
        self.per_request_seed = not on_cpu()

    @property
    def max_model_len(self) -> int:
        return self.llm.llm_engine.model_config.max_model_len

    def encode_prompt(self, question: str) -> list[int]:
        return encode_question(self.tokenizer, question, self.prompt_template)

    def decode(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=True)

    def generate(self, requests: list[SampleRequest], seed: int) -> GenerateOutput:
        """Each of a request's n samples is its own engine request (vLLM runs them so anyway), which makes the
        prompt and cache counts exactly what the engine computed. Greedy requests run once and are copied."""
        from vllm.inputs import TokensPrompt

        if not self.per_request_seed:
            import torch

            torch.manual_seed(seed)
        owners = [i for i, r in enumerate(requests) for _ in range(1 if r.temperature == 0 else r.n)]
        params = [
            sampling_params(requests[i], seed + k if self.per_request_seed else None) for k, i in enumerate(owners)
        ]
        prompts = [TokensPrompt(prompt_token_ids=list(requests[i].prefix)) for i in owners]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        samples: list[list[Sample]] = [[] for _ in requests]
        prompt, cached = [0] * len(requests), [0] * len(requests)
        for i, out in zip(owners, outputs, strict=True):
            samples[i] += [Sample(list(o.token_ids), o.text, finish_reason(o)) for o in out.outputs]
            prompt[i] += len(out.prompt_token_ids)
            cached[i] += out.num_cached_tokens or 0
        # greedy continuations are identical: copy the one the engine made
        samples = [s * r.n if len(s) < r.n else s for s, r in zip(samples, requests, strict=True)]
        return GenerateOutput(samples, prompt, cached)
