"""Turn step scores into a trajectory score, and pick one trajectory among candidates."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence

from tdrm_search.types import Trajectory

AGGREGATIONS: dict[str, Callable[[Sequence[float]], float]] = {
    "last": lambda s: s[-1],
    "min": min,
    "prod": math.prod,
    "mean": lambda s: sum(s) / len(s),
}
SELECTIONS = ("argmax", "majority", "weighted_majority")


def aggregate(step_scores: Sequence[float], how: str) -> float:
    """The score of a trajectory from its step scores (0.0 for a trajectory with no step)."""
    if how not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {how!r}; choose one of {sorted(AGGREGATIONS)}")
    return AGGREGATIONS[how](step_scores) if step_scores else 0.0


def answer_key(answer: str) -> str:
    """Answers that differ only in spacing or a trailing period vote together."""
    return "".join(answer.split()).rstrip(".")


def select(candidates: Sequence[Trajectory], how: str) -> Trajectory | None:
    """argmax: highest score. majority: most frequent answer. weighted_majority: answer with the largest
    score sum. Voting picks the best-scored trajectory of the winning answer; ties go to the higher score."""
    if how not in SELECTIONS:
        raise ValueError(f"unknown selection {how!r}; choose one of {list(SELECTIONS)}")
    if not candidates:
        return None
    best = max(candidates, key=lambda t: t.score)
    if how == "argmax":
        return best
    votes: dict[str, float] = defaultdict(float)
    for t in candidates:
        if t.answer is not None:
            votes[answer_key(t.answer)] += 1.0 if how == "majority" else t.score
    if not votes:
        return best
    winner = max(
        votes, key=lambda a: (votes[a], max(t.score for t in candidates if t.answer and answer_key(t.answer) == a))
    )
    return max(
        (t for t in candidates if t.answer is not None and answer_key(t.answer) == winner), key=lambda t: t.score
    )
