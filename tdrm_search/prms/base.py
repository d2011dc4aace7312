"""The narrow protocol every process reward model implements."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from tdrm_search.types import Problem


@dataclass(frozen=True)
class ScoreRequest:
    """Score steps[start:] of a path; steps before `start` were scored earlier and are context only."""

    problem: Problem
    steps: tuple[str, ...]
    start: int = 0


@dataclass
class ScoreOutput:
    """Values in [0, 1] for each request's unscored steps, plus the PRM's token accounting."""

    scores: list[list[float]]
    tokens: list[int]  # per request: tokens the PRM was given
    cached_tokens: list[int]  # per request: of those, served from a prefix cache
    generated_tokens: list[int] | None = None  # per request: tokens the PRM wrote (a generative head's critiques)


@runtime_checkable
class PRM(Protocol):
    """A process reward model: the value of each step prefix, in [0, 1]."""

    def score(self, requests: list[ScoreRequest]) -> ScoreOutput: ...


def check_scores(requests: list[ScoreRequest], output: ScoreOutput) -> None:
    """Raise ValueError naming the problem and step when a PRM returns a missing, NaN or out-of-range value."""
    if len(output.scores) != len(requests):
        raise ValueError(f"PRM returned {len(output.scores)} score lists for {len(requests)} requests")
    for request, scores in zip(requests, output.scores, strict=True):
        expected = len(request.steps) - request.start
        name = request.problem.id or request.problem.question[:60]
        if len(scores) != expected:
            raise ValueError(f"PRM returned {len(scores)} scores for {expected} steps of problem {name!r}")
        for k, value in enumerate(scores, start=request.start):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"PRM returned {value!r} for step {k} of problem {name!r}; values must lie in [0, 1]")
