"""Qwen2.5-Math-PRM's architecture for transformers, without remote code.

The checkpoint is a Qwen2 backbone (`model.*`) plus `score`: Linear(h, h) -> ReLU -> Linear(h, 2), read at
each `<extra_0>` step tag. vLLM loads the same folder natively as `Qwen2ForProcessRewardModel`.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import torch
from safetensors import safe_open
from torch import nn
from transformers import AutoModel

ARCHITECTURE = "Qwen2ForProcessRewardModel"


def is_process_reward_model(folder: str | Path) -> bool:
    config = Path(folder) / "config.json"
    return config.is_file() and ARCHITECTURE in json.loads(config.read_text()).get("architectures", [])


class Qwen2ProcessRewardModel(nn.Module):
    def __init__(self, backbone: nn.Module, num_labels: int = 2):
        super().__init__()
        hidden = backbone.config.hidden_size
        self.model, self.config = backbone, backbone.config
        self.score = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, num_labels))

    @property
    def base_model(self) -> nn.Module:
        """The backbone that yields hidden states, as transformers' models name it."""
        return self.model

    @classmethod
    def from_pretrained(cls, folder: str | Path, dtype: torch.dtype = torch.float32) -> Qwen2ProcessRewardModel:
        model = cls(AutoModel.from_pretrained(folder, dtype=dtype)).to(dtype)
        head = {}
        for shard in sorted(Path(folder).glob("*.safetensors")):
            with safe_open(str(shard), framework="pt") as f:
                head |= {k.removeprefix("score."): f.get_tensor(k) for k in f.keys() if k.startswith("score.")}
        missing = set(model.score.state_dict()) - set(head)
        if missing:
            raise ValueError(f"{folder}: not a {ARCHITECTURE} checkpoint, score head weights {sorted(missing)} missing")
        model.score.load_state_dict(head)
        return model.eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> SimpleNamespace:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return SimpleNamespace(logits=self.score(hidden))
