"""The training run's configuration: plain data, light to import (the command line builds its flags from it)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from prm_train.targets import TargetSpec


@dataclass(frozen=True)
class TrainConfig:
    """`rounds` × `epochs` passes over the data; bootstrapped targets are refreshed once per round."""

    targets: TargetSpec = field(default_factory=TargetSpec)
    rounds: int = field(default=1, metadata={"help": "online re-targeting rounds (bootstrapped targets)"})
    epochs: int = field(default=2, metadata={"help": "epochs per round"})
    batch_size: int = field(default=32, metadata={"help": "rollouts per optimiser step"})
    lr: float = field(default=2e-3, metadata={"help": "AdamW learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    seed: int = field(default=0, metadata={"help": "initialisation and shuffling seed"})
    max_len: int = field(default=512, metadata={"help": "tokens per sequence (steps past it lose their targets)"})

    def __post_init__(self) -> None:
        for name in ("rounds", "epochs", "batch_size", "max_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
