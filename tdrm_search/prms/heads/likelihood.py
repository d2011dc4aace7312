"""The likelihood head: a causal LM's own step likelihood, read out through two learned numbers.

m_t = min over the tokens of steps 0..t of log P(token | everything before it): the least likely token so far,
so one improbable token (a wrong operand) lowers every later value and an early error is carried forward.
V(s_t) = sigmoid(scale * m_t + bias). A backbone pre-trained on correct solutions already ranks a problem's
solutions well through m_t; `prm_train` fits (scale, bias) and then trains the whole LM through m_t with TD or
Monte-Carlo targets, so training starts from what the backbone knows instead of a fresh tag classifier.
m_t needs every token of the path, so each path is read whole: on transformers batched, on vLLM through its
prompt logprobs (such requests read no prefix cache).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import TYPE_CHECKING, ClassVar

from tdrm_search.devices import model_device
from tdrm_search.prms.encoding import EncodedPath, right_pad
from tdrm_search.prms.heads.base import Head, skip_cache

if TYPE_CHECKING:
    import torch

    from tdrm_search.prms.config import PRMConfig


@dataclass
class LikelihoodHead(Head):
    name: ClassVar[str] = "likelihood"
    reads_tag: ClassVar[bool] = False
    reuses_prefixes: ClassVar[bool] = False
    learns_readout: ClassVar[bool] = True
    remote_read: ClassVar[str | None] = "prompt_logprobs"

    def path_logits(self, model, paths: Sequence[EncodedPath], pad: int) -> list[torch.Tensor]:
        """scale * m_t + bias at every path's read positions, with the (scale, bias) `attach` gave the model, else
        the config's."""
        readout = getattr(model, "likelihood_readout", None)
        return [logit(self.config if readout is None else readout, m) for m in step_least_logprobs(model, paths, pad)]

    @classmethod
    def attach(cls, model, config: PRMConfig):
        """(scale, bias) as the submodule `likelihood_readout`, trained with the LM (in checkpoints; `export` writes
        them to tdrm_prm.json)."""
        import torch

        model.likelihood_readout = torch.nn.ParameterDict(
            {name: torch.nn.Parameter(torch.tensor(float(getattr(config, name)))) for name in ("scale", "bias")}
        )
        return model

    def read_vllm(self, llm, prompts: list[EncodedPath], read_cache: bool = True) -> list[tuple[list[float], object]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(
            max_tokens=1, temperature=0.0, prompt_logprobs=0, skip_reading_prefix_cache=skip_cache(read_cache)
        )
        outputs = llm.generate([TokensPrompt(prompt_token_ids=p.ids) for p in prompts], params, use_tqdm=False)
        values = []
        for path, out in zip(prompts, outputs, strict=True):
            step_lp = [out.prompt_logprobs[j][path.ids[j]].logprob for j in range(path.prompt, len(path.ids))]
            least = [0.0, *accumulate(step_lp, min)]  # least[k]: m over the first k step tokens (none: log 1)
            logits = [logit(self.config, least[end + 1 - path.prompt]) for end in path.ends]
            values.append(([0.5 * (1.0 + math.tanh(x / 2)) for x in logits], out))  # sigmoid
        return values


def logit(readout, least):
    """scale * m_t + bias, with the `scale` and `bias` of the model's `likelihood_readout` or of the PRMConfig."""
    return readout.scale * least + readout.bias


def step_least_logprobs(model, paths: Sequence[EncodedPath], pad: int) -> list[torch.Tensor]:
    """m_t at every read position (`ends`) of every path, whose steps start at `prompt`. Right-padded batch;
    differentiable when grad is on."""
    ids, mask = right_pad([p.ids for p in paths], pad, model_device(model))
    logprobs = model(input_ids=ids, attention_mask=mask).logits.float().log_softmax(-1)
    token_lp = logprobs[:, :-1].gather(-1, ids[:, 1:, None])[..., 0]  # index j: log P(token j + 1)
    return [running_least(token_lp[i], p) for i, p in enumerate(paths)]


def running_least(token_lp: torch.Tensor, path: EncodedPath) -> torch.Tensor:
    """m_t at each of `path.ends`, from token_lp[j] = log P(token j + 1 | tokens 0..j)."""
    import torch

    step_lp = token_lp[path.prompt - 1 :]
    least = torch.cat([step_lp.new_zeros(1), step_lp]).cummin(0).values  # least[k]: over the first k (none: log 1)
    return least[torch.tensor(path.ends) + 1 - path.prompt]
