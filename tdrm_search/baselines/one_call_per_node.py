"""The paper's way of running a step-wise search on vLLM, as the search-cost benchmark compares against it: every
expanded node its own `LLM.generate` call on a text prompt, and every path re-encoded and scored whole with no
prefix-cache reads. Both wrap the engine's own policy and PRM, so the search they run is the engine's."""

from __future__ import annotations

from dataclasses import replace


class OneCallPerNode:
    """The paper's generation: every expanded node is its own `LLM.generate` call on a text prompt."""

    def __init__(self, policy):
        self.policy = policy

    def __getattr__(self, name):
        return getattr(self.policy, name)

    def generate(self, requests, seed):
        from tdrm_search.policies.base import GenerateOutput

        samples, prompt, cached = [], [], []
        for i, request in enumerate(requests):
            text = self.policy.tokenizer.decode(list(request.prefix), skip_special_tokens=False)
            new, sent, hit = generate_text(self.policy, text, request, seed + i)
            samples.append(new)
            prompt.append(sent)
            cached.append(hit)
        return GenerateOutput(samples, prompt, cached)


def generate_text(policy, text: str, request, seed: int):
    """One text-prompt call for one node: its samples, prompt tokens and cached prompt tokens."""
    import torch

    from tdrm_search.policies.base import Sample
    from tdrm_search.policies.vllm import finish_reason, sampling_params

    torch.manual_seed(seed)
    params = sampling_params(request)
    runs = 1 if request.temperature == 0 else request.n  # one prompt per sample, counted as the engine ran them
    outs = policy.llm.generate([text] * runs, params, use_tqdm=False)
    samples = [Sample(list(o.token_ids), o.text, finish_reason(o)) for out in outs for o in out.outputs]
    samples = samples * request.n if len(samples) < request.n else samples
    return samples, sum(len(o.prompt_token_ids) for o in outs), sum(o.num_cached_tokens or 0 for o in outs)


class FullPathRescoring:
    """The paper's scoring: each path re-encoded and run whole, one sequence per call, no prefix-cache reads, with
    any head the PRM has (its head reads the path's newest step). A PRM without a model (the oracle) rescores the
    whole path and keeps the new values."""

    def __init__(self, prm):
        self.prm = prm

    def score(self, requests):
        from tdrm_search.prms.base import ScoreOutput

        outs = [self.one(r) for r in requests]
        return ScoreOutput(
            [o.scores[0] for o in outs],
            [o.tokens[0] for o in outs],
            [o.cached_tokens[0] for o in outs],
            [o.generated_tokens[0] if o.generated_tokens else 0 for o in outs],  # a generative head's critiques
        )

    def one(self, request):
        if not hasattr(self.prm, "llm"):
            out = self.prm.score([replace(request, start=0)])
            out.scores[0] = out.scores[0][request.start :]
            return out
        if len(request.steps) - request.start != 1:
            raise ValueError("the baseline scores one new step per path (step-wise search)")
        return self.prm.score([request], read_cache=False)
