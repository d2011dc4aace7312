"""No verifier: every step gets the same value. Best-of-N with it is a random pick and weighted majority is plain
majority vote (self-consistency); collecting training data with it records no PRM's opinion."""

from __future__ import annotations

from tdrm_search.prms.base import ScoreOutput, ScoreRequest


class ConstantPRM:
    """Every step valued `value` (0.5 by default), at no token cost."""

    def __init__(self, value: float = 0.5):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"a constant PRM value must lie in [0, 1], got {value}")
        self.value = value

    def score(self, requests: list[ScoreRequest]) -> ScoreOutput:
        scores = [[self.value] * (len(r.steps) - r.start) for r in requests]
        return ScoreOutput(scores, [0] * len(requests), [0] * len(requests))
