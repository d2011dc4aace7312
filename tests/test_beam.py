"""Beam search: a round's samples go to the live beams in proportion to their PRM values, or evenly."""

from __future__ import annotations

import pytest
from synthetic import StepPolicy, StepPRM

from tdrm_search import search
from tdrm_search.strategies.beam import split_budget


def test_split_budget_gives_largest_remainders_and_evens_out_zero_weights():
    # quotas 6.86, 6.10, 2.29, 0.76: floors 6, 6, 2, 0 and the two largest remainders (0.86, 0.76) get one more
    assert split_budget(16, [0.9, 0.8, 0.3, 0.1]) == [7, 6, 2, 1]
    assert split_budget(4, [0.9, 0.9, 0.1, 0.1]) == [2, 2, 0, 0]
    assert split_budget(5, [1.0, 1.0]) == [3, 2]  # a tie goes to the earlier parent
    assert split_budget(4, [0.0, 0.0, 0.0]) == [2, 1, 1]


@pytest.mark.parametrize(
    "allocation, requests",
    [
        # The root's 4 samples are good steps 1 and 21 (value 0.9) and bad steps 12 and 32 (0.1); all four live on.
        # By value, the good beams share every later sample and no sample goes below a bad step.
        ("value", [((0,), 4), ((0, 1), 2), ((0, 21), 2), ((0, 1, 1), 2), ((0, 21, 1), 2)]),
        # Evenly, each beam gets one sample a round, the bad ones too.
        (
            "even",
            [((0,), 4), ((0, 1), 1), ((0, 21), 1), ((0, 12), 1), ((0, 32), 1)]
            + [((0, 1, 1), 1), ((0, 21, 1), 1), ((0, 12, 1), 1), ((0, 32, 1), 1)],
        ),
    ],
)
def test_a_rounds_samples_follow_the_beams_values(allocation, requests):
    policy = StepPolicy()
    r = search("Q?", policy, StepPRM(), method="beam", n=4, beam_width=4, expansions=1, allocation=allocation)
    assert policy.requests == requests
    assert len(r.candidates) == 4
