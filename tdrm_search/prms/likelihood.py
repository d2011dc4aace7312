"""The likelihood head: a causal LM's own step likelihood, read out through two learned numbers.

m_t = min over the tokens of steps 0..t of log P(token | everything before it): the least likely token so far,
so one improbable token (a wrong operand) lowers every later value and an early error is carried forward.
V(s_t) = sigmoid(scale * m_t + bias). A backbone pre-trained on correct solutions already ranks a problem's
solutions well through m_t; `prm_train` fits (scale, bias) and then trains the whole LM through m_t with TD or
Monte-Carlo targets, so training starts from what the backbone knows instead of a fresh tag classifier.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tdrm_search.prms.encoding import EncodedPath, right_pad


class LikelihoodReadout(torch.nn.Module):
    """logit(V_t) = scale * m_t + bias."""

    def __init__(self, scale: float = 1.0, bias: float = 0.0):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(float(scale)))
        self.bias = torch.nn.Parameter(torch.tensor(float(bias)))

    def forward(self, least_logprob: torch.Tensor) -> torch.Tensor:
        return self.scale * least_logprob + self.bias


def step_least_logprobs(model, paths: Sequence[EncodedPath], pad: int) -> list[torch.Tensor]:
    """m_t at every read position (`ends`) of every path: each path's steps run from `prompt` to its first end,
    then from one end to the next. Right-padded batch; differentiable when grad is on."""
    ids, mask = right_pad([p.ids for p in paths], pad)
    logprobs = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), -1)
    token_lp = logprobs[:, :-1].gather(-1, ids[:, 1:, None])[..., 0]  # index j: log P(token j + 1)
    return [running_least(token_lp[i], p) for i, p in enumerate(paths)]


def running_least(token_lp: torch.Tensor, path: EncodedPath) -> torch.Tensor:
    """m_t at each of `path.ends`, from token_lp[j] = log P(token j + 1 | tokens 0..j)."""
    starts = [path.prompt, *(e + 1 for e in path.ends[:-1])]
    zero = token_lp.new_zeros(())  # an empty step (nothing to be unlikely) is log 1
    step_min = torch.stack(
        [token_lp[s - 1 : e].min() if e >= s else zero for s, e in zip(starts, path.ends, strict=True)]
    )
    return torch.cummin(step_min, 0).values
