"""A vLLM policy: token-id prompts, one `generate` call per round, prefix caching on."""

from __future__ import annotations

from pathlib import Path

from tdrm_search.policies.base import GenerateOutput, Sample, SampleRequest
from tdrm_search.policies.prompt import encode_question
from tdrm_search.vllm_engine import make_llm, on_cpu


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


def sample_seeds(seed: int, count: int) -> list[int]:
    """Per-sample seeds for one generate call whose seed is `seed`. Calls with seeds s and s + 1 (consecutive
    rounds) never share a sample seed, so a prefix sampled again in a later round draws new samples."""
    return [(seed * 2_654_435_761 + k) % 2**63 for k in range(count)]


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

    @staticmethod
    def seeds(requests: list[SampleRequest], owners: list[int], seed: int) -> list[int]:
        """Each engine request's seed: from its request's own seed where it has one, else from the call's."""
        own = {i: iter(sample_seeds(r.seed, r.n)) for i, r in enumerate(requests) if r.seed is not None}
        return [next(own[i]) if i in own else s for i, s in zip(owners, sample_seeds(seed, len(owners)), strict=True)]

    def generate(self, requests: list[SampleRequest], seed: int) -> GenerateOutput:
        """Each of a request's n samples is its own engine request (vLLM runs them so anyway), which makes the
        prompt and cache counts exactly what the engine computed. Greedy requests run once and are copied."""
        from vllm.inputs import TokensPrompt

        if not self.per_request_seed:
            import torch

            torch.manual_seed(seed)
        owners = [i for i, r in enumerate(requests) for _ in range(1 if r.temperature == 0 else r.n)]
        seeds = self.seeds(requests, owners, seed) if self.per_request_seed else [None] * len(owners)
        params = [sampling_params(requests[i], s) for i, s in zip(owners, seeds, strict=True)]
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
