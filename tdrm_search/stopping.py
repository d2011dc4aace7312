"""Adaptive consistency (Aggarwal et al. 2023, arXiv 2305.11860): stop sampling once the answer is settled.

The Beta stopping rule: with v1 votes for the leading answer and v2 for the runner-up, and a uniform prior on their
shares, the posterior of p1 / (p1 + p2) is Beta(v1 + 1, v2 + 1); the search stops once the probability that the
leader beats the runner-up, P(p1 > p2) = P(Beta(v1 + 1, v2 + 1) > 1/2), reaches a confidence (0.95: four
agreeing answers and none against). The weighted variant counts each answer's PRM scores instead of its votes.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from scipy.special import betainc

from tdrm_search.aggregate import answer_key

STOPS = ("consensus", "weighted_consensus")  # votes, or PRM-score-weighted votes


@dataclass(frozen=True)
class Consensus:
    """Where the vote stands: the leading answer (first seen among ties), its votes, and P(leader beats runner-up)."""

    answer: str | None
    votes: float
    probability: float


def consensus(answers: Sequence[str | None], weights: Sequence[float] | None = None) -> Consensus:
    """The vote over `answers` (None: no answer, no vote), each counting 1 or its weight; answers that differ only
    in spacing or a trailing period vote together."""
    if weights is not None and len(weights) != len(answers):
        raise ValueError(f"{len(answers)} answers but {len(weights)} weights")
    bad = [w for w in weights or [] if not (math.isfinite(w) and w >= 0)]
    if bad:
        raise ValueError(f"vote weights must be finite and >= 0 (PRM scores); got {bad}")
    votes: dict[str, float] = defaultdict(float)
    first: dict[str, str] = {}
    for i, answer in enumerate(answers):
        if answer is not None:
            key = answer_key(answer)
            first.setdefault(key, answer)
            votes[key] += 1.0 if weights is None else weights[i]
    ranked = sorted(votes, key=votes.__getitem__, reverse=True)  # stable: ties keep their first-seen order
    v1, v2 = ([votes[k] for k in ranked[:2]] + [0.0, 0.0])[:2]
    # P(Beta(v1 + 1, v2 + 1) > 1/2) = I_{1/2}(v2 + 1, v1 + 1), the regularized incomplete beta function.
    return Consensus(first[ranked[0]] if ranked else None, v1, float(betainc(v2 + 1, v1 + 1, 0.5)))


def check_stop(stop: str | None, confidence: float, wave: int) -> None:
    """The stopping options a search (`SearchConfig`) and a replay (`tdrm rerank --stop`) both take."""
    if wave < 1:
        raise ValueError(f"wave must be >= 1, got {wave}")
    if stop is not None and stop not in STOPS:
        raise ValueError(f"unknown stop {stop!r}; choose one of {list(STOPS)} or None")
    if not 0.5 < confidence < 1:
        raise ValueError(f"confidence must lie in (0.5, 1), got {confidence}")


def should_stop(
    answers: Sequence[str | None], confidence: float = 0.95, weights: Sequence[float] | None = None
) -> bool:
    """Whether the Beta rule says the leading answer is settled at `confidence`."""
    return consensus(answers, weights).probability >= confidence


def stopping_point(
    answers: Sequence[str | None], confidence: float = 0.95, weights: Sequence[float] | None = None, wave: int = 1
) -> int:
    """How many of `answers`, taken in order `wave` at a time, a search that checks the rule after each wave uses."""
    for used in range(wave, len(answers) + wave, wave):
        used = min(used, len(answers))
        if should_stop(answers[:used], confidence, None if weights is None else weights[:used]):
            return used
    return len(answers)
