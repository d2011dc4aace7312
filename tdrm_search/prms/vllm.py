"""A vLLM PRM: its head picks the engine's arguments, the prompts that read a path's new steps and how they are
read (`prms/heads/`): the LM and value heads send one request per new step, ending at its read position, so each
step's prefix comes from the prefix cache; the token-classification and likelihood heads send each path whole; the
generative head writes each new step's critique through `generate`, then reads its verdict."""

from __future__ import annotations

from pathlib import Path

from tdrm_search.prms.base import ScoreOutput, ScoreRequest
from tdrm_search.prms.config import PRMConfig
from tdrm_search.prms.encoding import pad_values
from tdrm_search.prms.heads import HEAD_TYPES, head_for
from tdrm_search.vllm_engine import make_llm


class VLLMPRM:
    def __init__(self, llm, config: PRMConfig | None = None, **engine_kwargs):
        where = "VLLMPRM engine object"
        if isinstance(llm, (str, Path)):
            where = str(llm)
            config = config or PRMConfig.load(llm)
            llm = make_llm(llm, **{**HEAD_TYPES[config.head].engine_args(llm), **engine_kwargs})
        if config is None:
            raise ValueError("VLLMPRM needs a PRMConfig when given an LLM object")
        self.llm, self.config, self.tokenizer = llm, config, llm.get_tokenizer()
        self.head = head_for(config, self.tokenizer)
        self.head.check_format(where)

    def score(self, requests: list[ScoreRequest], read_cache: bool = True) -> ScoreOutput:
        """The requests' values in one engine call; `read_cache=False` reads nothing from the prefix cache."""
        max_len = self.llm.llm_engine.model_config.max_model_len
        prompts = [
            (i, prompt)
            for i, r in enumerate(requests)
            for path in self.head.encode(r.problem.question, r.steps, r.start, max_len)
            for prompt in self.head.vllm_requests(path)
        ]
        outputs = self.head.read_vllm(self.llm, [p for _, p in prompts], read_cache) if prompts else []
        scores: list[list[float]] = [[] for _ in requests]
        tokens, cached, generated = [0] * len(requests), [0] * len(requests), [0] * len(requests)
        for (i, _), (values, out) in zip(prompts, outputs, strict=True):
            spent = self.head.spent(out)
            scores[i] += values
            tokens[i] += spent.prompt
            cached[i] += spent.cached
            generated[i] += spent.generated
        scores = [pad_values(s, len(r.steps) - r.start) for s, r in zip(scores, requests, strict=True)]
        return ScoreOutput(scores, tokens, cached, generated)
