"""The LM head (Math-Shepherd style): a causal LM read at each step tag, P(good) / (P(good) + P(bad)) of the next
token. On vLLM one `max_tokens=1` request per new step whose prompt ends at its tag, asking only for the good/bad
logprobs, so each step's prefix comes from the prefix cache."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from tdrm_search.prms.encoding import single_token_id
from tdrm_search.prms.heads.base import Head, skip_cache

if TYPE_CHECKING:
    import torch

    from tdrm_search.prms.config import PRMConfig
    from tdrm_search.prms.encoding import EncodedPath


@dataclass
class LMHead(Head):
    name: ClassVar[str] = "lm"
    one_request_per_step: ClassVar[bool] = True
    remote_read: ClassVar[str | None] = "token_logprobs"

    good: int = field(init=False)
    bad: int = field(init=False)

    def __post_init__(self) -> None:
        self.good = single_token_id(self.tokenizer, self.config.good_token, "good_token")
        self.bad = single_token_id(self.tokenizer, self.config.bad_token, "bad_token")

    @classmethod
    def check_config(cls, config: PRMConfig) -> None:
        if not (config.good_token and config.bad_token):
            raise ValueError("PRM config: an 'lm' head needs good_token and bad_token")
        super().check_config(config)

    def logits(self, model, hidden: torch.Tensor) -> torch.Tensor:
        """logit(good) - logit(bad): its sigmoid is P(good) / (P(good) + P(bad))."""
        logits = model.get_output_embeddings()(hidden)
        return logits[..., self.good] - logits[..., self.bad]

    def check_model(self, model) -> None:
        single_token_id(self.tokenizer, self.config.step_tag, "step_tag")

    def read_vllm(self, llm, prompts: list[EncodedPath], read_cache: bool = True) -> list[tuple[list[float], object]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(
            max_tokens=1,
            temperature=0.0,
            logprob_token_ids=[self.good, self.bad],
            skip_reading_prefix_cache=skip_cache(read_cache),
        )
        outputs = llm.generate([TokensPrompt(prompt_token_ids=p.ids) for p in prompts], params, use_tqdm=False)
        values = []
        for out in outputs:
            logprobs = out.outputs[0].logprobs[0]
            good, bad = math.exp(logprobs[self.good].logprob), math.exp(logprobs[self.bad].logprob)
            values.append(([good / (good + bad) if good + bad > 0 else 0.5], out))
        return values
