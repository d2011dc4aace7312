"""Trajectory scores and answer selection, on hand-computed cases."""

import math

import pytest

from tdrm_search.aggregate import aggregate, select
from tdrm_search.types import Trajectory


def traj(answer, score, node=0):
    return Trajectory(
        steps=["x"], step_scores=[score], score=score, answer=answer, finish="answer", num_tokens=1, node=node
    )


@pytest.mark.parametrize("how, expected", [("last", 0.5), ("min", 0.2), ("prod", 0.9 * 0.2 * 0.5), ("mean", 1.6 / 3)])
def test_aggregations(how, expected):
    assert math.isclose(aggregate([0.9, 0.2, 0.5], how), expected)


def test_selection_modes_disagree_as_they_should():
    # "7" has the single best score; "5" has the most votes; "6" has the largest score sum.
    cands = [
        traj("7", 0.95, 0),
        traj("5", 0.1, 1),
        traj("5", 0.1, 2),
        traj("5", 0.1, 3),
        traj("6", 0.6, 4),
        traj("6", 0.6, 5),
    ]
    assert select(cands, "argmax").answer == "7"
    assert select(cands, "majority").answer == "5"
    assert select(cands, "weighted_majority").answer == "6"
    assert select(cands, "weighted_majority").node in (4, 5)


def test_votes_ignore_spacing_and_trailing_period_and_missing_answers():
    cands = [traj("1 000", 0.3, 0), traj("1000.", 0.3, 1), traj("2", 0.5, 2), traj(None, 0.9, 3)]
    assert select(cands, "majority").answer in ("1 000", "1000.")
    assert select([], "argmax") is None
    with pytest.raises(ValueError, match="unknown selection"):
        select(cands, "vote")
