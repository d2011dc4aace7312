"""TDRM's way of scoring a search: every child prefix a new full sequence, one forward pass each (batch size 1),
nothing reused from its parent (THUDM/TDRM `search/models/value_models.py`). It wraps an `HFPRM` with any head,
so its values are the engine's; only what it computes differs."""

from __future__ import annotations

from tdrm_search.prms.base import ScoreOutput, ScoreRequest
from tdrm_search.prms.encoding import pad_values
from tdrm_search.prms.hf import HFPRM


class FullSequencePRM:
    def __init__(self, prm: HFPRM):
        self.prm = prm

    def score(self, requests: list[ScoreRequest]) -> ScoreOutput:
        scores, tokens = [], []
        for request in requests:
            rows = self.prm.encode(request)
            values = [v for row in rows if row.ends for v in self.prm.step_values([row])[0].tolist()]
            scores.append(pad_values(values, len(request.steps) - request.start))
            tokens.append(sum(len(row.ids) for row in rows))
        return ScoreOutput(scores, tokens, [0] * len(requests))
