"""Released PRM architectures that transformers has no class for, loaded without remote code.

Qwen2.5-Math-PRM (`Qwen2ForProcessRewardModel`): a Qwen2 backbone (`model.*`) plus `score`: Linear(h, h) -> ReLU ->
Linear(h, 2), read at each `<extra_0>` step tag. vLLM loads the same folder natively.
Skywork-o1-Open-PRM (`Qwen2ForPrmModel`): a Qwen2 causal LM (`model.*`, `lm_head.*`) plus `v_head.summary`:
Linear(h, 1), one scalar per token (TRL's value-head layout), read at each step's end token. vLLM 0.32 has no such
architecture. Neither needs the LM head to score, so only the backbone and the read-out layer are loaded.
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
SKYWORK_ARCHITECTURE = "Qwen2ForPrmModel"


def architectures(folder: str | Path) -> list[str]:
    """The architectures a folder's config.json names (none without one)."""
    config = Path(folder) / "config.json"
    return json.loads(config.read_text()).get("architectures") or [] if config.is_file() else []


def is_process_reward_model(folder: str | Path) -> bool:
    return ARCHITECTURE in architectures(folder)


def read_out_weights(folder: str | Path, prefix: str) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors under `prefix` (e.g. "score."), the prefix dropped."""
    weights = {}
    for shard in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(shard), framework="pt") as f:
            weights |= {k.removeprefix(prefix): f.get_tensor(k) for k in f.keys() if k.startswith(prefix)}
    return weights


class BackboneWithReadOut(nn.Module):
    """A backbone yielding hidden states and a read-out layer beside it, loaded from one checkpoint."""

    architecture = ""
    prefix = ""

    def __init__(self, backbone: nn.Module, readout: nn.Module):
        super().__init__()
        self.model, self.config = backbone, backbone.config
        setattr(self, self.prefix.split(".")[0], readout)

    @property
    def base_model(self) -> nn.Module:
        """The backbone that yields hidden states, as transformers' models name it."""
        return self.model

    @classmethod
    def readout(cls, hidden: int) -> nn.Module:
        raise NotImplementedError

    @classmethod
    def from_pretrained(cls, folder: str | Path, dtype: torch.dtype = torch.float32):
        backbone = AutoModel.from_pretrained(folder, dtype=dtype)
        readout = cls.readout(backbone.config.hidden_size)
        weights = read_out_weights(folder, cls.prefix)
        missing = set(readout.state_dict()) - set(weights)
        if missing:
            raise ValueError(
                f"{folder}: not a {cls.architecture} checkpoint, read-out weights "
                f"{sorted(cls.prefix + m for m in missing)} missing"
            )
        readout.load_state_dict(weights, strict=False)
        return cls(backbone, readout.to(dtype)).eval()


class Qwen2ProcessRewardModel(BackboneWithReadOut):
    architecture = ARCHITECTURE
    prefix = "score."

    @classmethod
    def readout(cls, hidden: int, num_labels: int = 2) -> nn.Module:
        return nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, num_labels))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> SimpleNamespace:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return SimpleNamespace(logits=self.score(hidden))


class ValueHeadModel(BackboneWithReadOut):
    """Skywork-o1-Open-PRM: `v_head.summary` = Linear(h, 1) on the causal LM's last hidden state."""

    architecture = SKYWORK_ARCHITECTURE
    prefix = "v_head."

    @classmethod
    def readout(cls, hidden: int) -> nn.Module:
        return nn.ModuleDict({"summary": nn.Linear(hidden, 1)})

    def value(self, hidden: torch.Tensor) -> torch.Tensor:
        """The value logit at each hidden state (its sigmoid is the step's value)."""
        return self.v_head["summary"](hidden)[..., 0]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> SimpleNamespace:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return SimpleNamespace(logits=self.value(hidden))
