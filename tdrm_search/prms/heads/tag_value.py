"""The tag-value head (Skywork-o1-Open-PRM): a causal LM with a scalar value head (`v_head.summary`, one logit per
token), the value of a step sigmoid(logit) at the step's end token. Skywork's inputs are `bos + question + "\\n"`,
then each step's ids followed by the step token's ids (`split_tag`). transformers only: vLLM 0.32 has no
architecture for this layout (`Qwen2ForPrmModel`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from tdrm_search.prms.heads.base import Head

if TYPE_CHECKING:
    import torch


@dataclass
class TagValueHead(Head):
    name: ClassVar[str] = "tag_value"
    trainable: ClassVar[bool] = False

    def load(self, folder: str | Path, dtype: torch.dtype):
        from tdrm_search.prms.qwen_prm import ValueHeadModel

        return ValueHeadModel.from_pretrained(folder, dtype=dtype)

    def logits(self, model, hidden: torch.Tensor) -> torch.Tensor:
        return model.value(hidden)

    @classmethod
    def engine_args(cls, folder: str | Path) -> dict:
        from tdrm_search.prms.qwen_prm import SKYWORK_ARCHITECTURE

        raise ValueError(
            f"{folder}: a 'tag_value' PRM ({SKYWORK_ARCHITECTURE}, a causal LM with a value head) has no vLLM "
            "architecture in vLLM 0.32; score it with HFPRM (--backend hf)"
        )
