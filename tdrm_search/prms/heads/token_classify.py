"""The token-classification head (Qwen2.5-Math-PRM, PRMs trained by TRL's PRMTrainer): class `positive_label` of a
classifier at each step tag. On vLLM, `encode(pooling_task="token_classify")` of the whole path with every token's
class logits returned (tokenwise pooling "ALL"), read at the path's tags; the pooling runner computes every token (it
caches no prefixes). vLLM's own default for `Qwen2ForProcessRewardModel` is "STEP" pooling with `step_tag_id` 151651
(`<extra_0>` in Qwen's vocabulary), which returns no rows at all where the tag has another id."""

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
        from vllm.config import PoolerConfig

        # every token's raw class logits; per-token pooling computes every token, so no prefix cache
        return {
            "runner": "pooling",
            "enable_prefix_caching": False,
            "pooler_config": PoolerConfig(tok_pooling_type="ALL", use_activation=False),
        }

    def read_vllm(self, llm, prompts: list[EncodedPath], read_cache: bool = True) -> list[tuple[list[float], object]]:
        from vllm import PoolingParams
        from vllm.inputs import TokensPrompt

        outputs = llm.encode(
            [TokensPrompt(prompt_token_ids=p.ids) for p in prompts],
            pooling_task="token_classify",
            pooling_params=PoolingParams(use_activation=False, skip_reading_prefix_cache=skip_cache(read_cache)),
            use_tqdm=False,
        )
        values = []
        for path, out in zip(prompts, outputs, strict=True):
            if len(out.outputs.data) < len(path.ids):
                raise RuntimeError(
                    f"vLLM returned {len(out.outputs.data)} token outputs for a {len(path.ids)}-token "
                    "path: an engine built without TokenClassifyHead.engine_args (tokenwise pooling 'ALL')?"
                )
            values.append((self.log_odds(out.outputs.data[path.ends]).sigmoid().tolist(), out))
        return values
