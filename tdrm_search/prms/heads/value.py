"""The value head (TDRM's scalar PRMs, outcome reward models): a 1-logit `*ForSequenceClassification` model read
at the last token of [user: question, assistant: steps so far], one sequence per step (`encode_values`). A step's
sequence shares the conversation up to the end of its steps with its extensions'; only its end-of-turn tokens are
its own. On vLLM one `classify` request per new step (last-token pooling reads the prefix cache)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from tdrm_search.prms.encoding import EncodedPath, conversation_parts, encode_values
from tdrm_search.prms.heads.base import Head, classifier, skip_cache

if TYPE_CHECKING:
    import torch


@dataclass
class ValueHead(Head):
    name: ClassVar[str] = "value"
    reads_tag: ClassVar[bool] = False
    one_request_per_step: ClassVar[bool] = True
    remote_read: ClassVar[str | None] = "classify"

    def check_format(self, where: str) -> None:
        super().check_format(where)
        try:
            conversation_parts(self.tokenizer, self.config, "?")
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None

    def encode(
        self, question: str, steps: Sequence[str], start: int = 0, max_len: int | None = None
    ) -> list[EncodedPath]:
        return encode_values(self.tokenizer, self.config, question, steps, start, max_len)

    def prompt_ids(self, question: str) -> list[int]:
        return self.tokenizer(conversation_parts(self.tokenizer, self.config, question)[0])["input_ids"]

    def load(self, folder: str | Path, dtype: torch.dtype):
        from transformers import AutoModelForSequenceClassification

        check_value_model(folder)
        return AutoModelForSequenceClassification.from_pretrained(folder, dtype=dtype)

    def logits(self, model, hidden: torch.Tensor) -> torch.Tensor:
        return classifier(model)(hidden)[..., 0]

    def init_model(self, base: str | Path, dtype: torch.dtype | None = None):
        """A fresh 1-logit `score` layer on the backbone at `base`, in `dtype` (default float32); a tokenizer
        without a pad token gets TDRM's added `[PAD]` (embeddings resized)."""
        import torch
        from transformers import AutoModelForSequenceClassification

        if self.tokenizer.pad_token is None:
            self.tokenizer.add_special_tokens({"pad_token": "[PAD]"})
        model = AutoModelForSequenceClassification.from_pretrained(
            base, dtype=dtype or torch.float32, num_labels=1, pad_token_id=self.tokenizer.pad_token_id
        )
        if len(self.tokenizer) > model.get_input_embeddings().num_embeddings:
            model.resize_token_embeddings(len(self.tokenizer))
        return model

    def check_model(self, model) -> None:
        if getattr(getattr(model, "score", None), "out_features", None) != 1:
            raise ValueError("a 'value' PRM trains a sequence-classification model with one label (num_labels=1)")

    @classmethod
    def engine_args(cls, folder: str | Path) -> dict:
        check_value_model(folder)
        return {"runner": "pooling", "convert": "classify"}

    def read_vllm(self, llm, prompts: list[EncodedPath], read_cache: bool = True) -> list[tuple[list[float], object]]:
        from vllm import PoolingParams
        from vllm.inputs import TokensPrompt

        outputs = llm.classify(
            [TokensPrompt(prompt_token_ids=p.ids) for p in prompts],
            pooling_params=PoolingParams(use_activation=False, skip_reading_prefix_cache=skip_cache(read_cache)),
            use_tqdm=False,
        )
        return [([0.5 * (1.0 + math.tanh(float(out.outputs.probs[0]) / 2))], out) for out in outputs]  # sigmoid


def check_value_model(folder: str | Path) -> None:
    """A *ForSequenceClassification folder with one label; a clear error otherwise."""
    from transformers import AutoConfig

    model_config = AutoConfig.from_pretrained(folder)
    architectures = model_config.architectures or []
    if not any(a.endswith("ForSequenceClassification") for a in architectures) or model_config.num_labels != 1:
        raise ValueError(
            f"{folder}: a 'value' PRM head needs a *ForSequenceClassification model with num_labels=1; its "
            f"config.json has architectures {architectures} and num_labels={model_config.num_labels}"
        )
