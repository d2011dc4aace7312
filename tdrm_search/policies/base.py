"""The narrow protocol every policy backend implements.

A strategy asks for samples continuing token-id prefixes; it never sees which engine runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class SampleRequest:
    """Sample `n` continuations of `prefix` (token ids: prompt plus the steps so far)."""

    prefix: tuple[int, ...]
    n: int
    max_tokens: int
    temperature: float
    top_p: float = 1.0
    stop: str | None = None  # the step delimiter for one-step samples; None samples whole solutions
    seed: int | None = None  # this request's own seed, where the backend can seed a request; None: the call's


@dataclass
class Sample:
    """One continuation: its token ids (stop text included), its text, and why it ended."""

    token_ids: list[int]
    text: str
    finish: str  # "eos", "stop" (hit the delimiter) or "length"


@dataclass
class GenerateOutput:
    """The samples of every request, plus what the backend reports about the call."""

    samples: list[list[Sample]]
    prompt_tokens: list[int]  # per request: prompt tokens the engine took in (vLLM: once per sample it ran)
    cached_prompt_tokens: list[int]  # per request: of those, served from the prefix cache


@runtime_checkable
class Policy(Protocol):
    """A language model that samples steps from token-id prefixes."""

    @property
    def max_model_len(self) -> int: ...

    def encode_prompt(self, question: str) -> list[int]:
        """Token ids of the prompt that asks `question` (chat template when the model has one)."""
        ...

    def decode(self, token_ids: list[int]) -> str: ...

    def generate(self, requests: list[SampleRequest], seed: int) -> GenerateOutput:
        """All requests in one batched call. A request with its own `seed` draws the same samples whatever else the
        call holds, on backends that can seed a request (transformers; vLLM on a GPU); the others, and vLLM on CPU
        for every request, draw from the call's `seed`, so the call is reproducible on the same backend."""
        ...
