"""The oracle verifier: an exact step checker used as a PRM, the upper bound any trained PRM aims at."""

from __future__ import annotations

from collections.abc import Callable

from tdrm_search.prms.base import ScoreOutput, ScoreRequest
from tdrm_search.types import Problem

StepLabeler = Callable[[Problem, list[str]], list[bool]]


class OraclePRM:
    """Step value 1.0 while every step so far is right, else 0.0. Defaults to the lab task's checker."""

    def __init__(self, labeler: StepLabeler | None = None):
        if labeler is None:
            from tdrm_search.tasks.lab import step_labels as labeler
        self.labeler = labeler

    def score(self, requests: list[ScoreRequest]) -> ScoreOutput:
        scores = []
        for r in requests:
            if not r.problem.meta:
                raise ValueError(
                    f"the oracle PRM checks steps exactly, so it needs a problem with a checker's metadata "
                    f"(a lab problem); got {r.problem.id or r.problem.question[:40]!r}"
                )
            scores.append([float(ok) for ok in self.labeler(r.problem, list(r.steps))[r.start :]])
        return ScoreOutput(scores, [0] * len(requests), [0] * len(requests))
