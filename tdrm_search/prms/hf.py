"""A transformers PRM: every unscored step of a path read out in one forward pass, batched over paths."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoModelForTokenClassification, AutoTokenizer

from tdrm_search.prms.base import ScoreOutput, ScoreRequest
from tdrm_search.prms.config import PRMConfig
from tdrm_search.prms.qwen_prm import Qwen2ProcessRewardModel, is_process_reward_model
from tdrm_search.prms.encoding import EncodedPath, encode_path, pad_values, single_token_id


def lm_readout(logits: torch.Tensor, good: int, bad: int) -> torch.Tensor:
    """P(good) / (P(good) + P(bad)) from LM logits at step tags."""
    return torch.softmax(logits[..., [good, bad]].float(), -1)[..., 0]


def load_model(folder: str | Path, config: PRMConfig, dtype: torch.dtype):
    if config.head == "lm":
        return AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    if is_process_reward_model(folder):
        return Qwen2ProcessRewardModel.from_pretrained(folder, dtype=dtype)
    return AutoModelForTokenClassification.from_pretrained(folder, dtype=dtype)


def right_pad(paths: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, paths))
    ids = torch.full((len(paths), width), pad, dtype=torch.long)
    mask = torch.zeros((len(paths), width), dtype=torch.long)
    for i, p in enumerate(paths):
        ids[i, : len(p)] = torch.tensor(p)
        mask[i, : len(p)] = 1
    return ids, mask


class HFPRM:
    """A PRM folder (model + tokenizer + tdrm_prm.json), or a model object with its tokenizer and config."""

    def __init__(self, model, tokenizer=None, config: PRMConfig | None = None, *, batch_size: int = 16,
                 dtype: torch.dtype = torch.float32):
        if isinstance(model, (str, Path)):
            config = config or PRMConfig.load(model)
            tokenizer = tokenizer or AutoTokenizer.from_pretrained(model)
            model = load_model(model, config, dtype)
        if tokenizer is None or config is None:
            raise ValueError("HFPRM needs a tokenizer and a PRMConfig when given a model object")
        self.model, self.tokenizer, self.config, self.batch_size = model.eval(), tokenizer, config, batch_size
        if config.head == "lm":
            self.good = single_token_id(tokenizer, config.good_token, "good_token")
            self.bad = single_token_id(tokenizer, config.bad_token, "bad_token")
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def encode(self, request: ScoreRequest) -> EncodedPath:
        return encode_path(self.tokenizer, self.config, request.problem.question, request.steps,
                           self.model.config.max_position_embeddings)

    @torch.inference_mode()
    def step_values(self, paths: list[EncodedPath]) -> list[torch.Tensor]:
        """Values at every step tag of each path; right padding, so padded positions are never read."""
        ids, mask = right_pad([p.ids for p in paths], self.pad)
        logits = self.model(input_ids=ids, attention_mask=mask).logits
        out = []
        for row, path in zip(logits, paths):
            at_tags = row[path.ends]
            if self.config.head == "lm":
                out.append(lm_readout(at_tags, self.good, self.bad))
            else:
                out.append(torch.softmax(at_tags.float(), -1)[:, self.config.positive_label])
        return out

    def score(self, requests: list[ScoreRequest]) -> ScoreOutput:
        paths = [self.encode(r) for r in requests]
        scores: list[list[float]] = []
        for i in range(0, len(paths), self.batch_size):
            chunk = paths[i : i + self.batch_size]
            for request, values in zip(requests[i : i + self.batch_size], self.step_values(chunk)):
                scores.append(pad_values(values.tolist(), len(request.steps))[request.start :])
        return ScoreOutput(scores, [len(p.ids) for p in paths], [0] * len(paths))
