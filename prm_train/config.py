"""The collection and training configurations: plain data, light to import (the command line builds its flags from
them)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from prm_train.targets import TargetSpec
from tdrm_search.config import METHODS


@dataclass(frozen=True)
class TrainConfig:
    """`rounds` × `epochs` passes over the data; bootstrapped targets are refreshed once per round. `batch_size` is
    the global batch (all processes of a launch together, all `grad_accum` micro-batches)."""

    targets: TargetSpec = field(default_factory=TargetSpec)
    rounds: int = field(default=1, metadata={"help": "online re-targeting rounds (bootstrapped targets)"})
    epochs: int = field(default=2, metadata={"help": "epochs per round"})
    batch_size: int = field(default=32, metadata={"help": "rollouts per optimiser step"})
    lr: float = field(default=2e-3, metadata={"help": "AdamW learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    seed: int = field(default=0, metadata={"help": "initialisation and shuffling seed"})
    max_len: int = field(default=512, metadata={"help": "tokens per sequence (steps past it lose their targets)"})
    grad_accum: int = field(
        default=1, metadata={"help": "micro-batches per process per step (the global batch stays --batch-size)"}
    )
    grad_checkpointing: bool = field(default=False, metadata={"help": "recompute activations in the backward pass"})
    mixed_precision: str = field(
        default="auto",
        metadata={"choices": ("auto", "no", "bf16", "fp16"), "help": "autocast (auto: accelerate's launch config)"},
    )
    lora_r: int = field(default=0, metadata={"help": "LoRA rank through peft (0: train every weight)"})
    lora_alpha: float = field(default=16.0, metadata={"help": "LoRA alpha"})

    def __post_init__(self) -> None:
        for name in ("rounds", "epochs", "batch_size", "max_len", "grad_accum"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lora_r < 0:
            raise ValueError(f"lora_r must be >= 0, got {self.lora_r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class CollectConfig:
    method: str = field(default="best_of_n", metadata={"choices": METHODS, "help": "search method that builds trees"})
    n: int = field(
        default=8, metadata={"flag": "-n", "help": "search budget n per problem (finished solutions per tree)"}
    )
    temperature: float = field(default=0.8, metadata={"help": "sampling temperature"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass"})
    max_tokens: int = field(default=256, metadata={"help": "generated tokens per solution"})
    mc_samples: int = field(
        default=0, metadata={"flag": "--mc", "help": "Monte-Carlo completions per non-terminal prefix (0: none)"}
    )
    seed: int = field(default=0, metadata={"help": "sampling seed (and, with --split eval, the lab problem seed)"})
    delimiter: str = field(default="\n\n", metadata={"help": "step delimiter"})
    batch_problems: int = field(default=64, metadata={"help": "problems per search_batch call"})

    def __post_init__(self) -> None:
        if self.n < 1 or self.mc_samples < 0 or self.max_tokens < 1 or self.batch_problems < 1:
            raise ValueError(f"need n >= 1, mc_samples >= 0, max_tokens >= 1, batch_problems >= 1; got {self}")

    def search_options(self) -> dict:
        return dict(
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.max_tokens,
            max_step_tokens=self.max_tokens,
            delimiter=self.delimiter,
        )
