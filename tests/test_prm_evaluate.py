"""Evaluation metrics on hand-computed cases."""

from __future__ import annotations

import pytest

from prm_train.data import Rollout
from prm_train.evaluate import (
    auc,
    best_of_n,
    evaluate_prm,
    first_error_detection,
    majority_of_n,
    smoothness,
    within_problem_auc,
)
from tdrm_search.prms.oracle import OraclePRM
from tdrm_search.tasks.lab import generate_problems, reference_solution, step_labels


def test_auc():
    assert auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == 0.75
    assert auc([0.5, 0.5], [False, True]) == 0.5
    assert auc([0.2, 0.3], [True, True]) is None


def test_within_problem_auc_ranks_inside_each_pool_only():
    # problem 1 ranks its right solution first (AUC 1); problem 2 ranks its right one last (AUC 0); problem 3 is
    # all right and tells nothing. Pooled over problems the scores would look good (high scores, mostly right).
    scores = [0.9, 0.8, 0.2, 0.1, 0.95, 0.99]
    correct = [True, False, False, True, True, True]
    assert within_problem_auc(scores, correct, [[0, 1], [2, 3], [4, 5]]) == 0.5
    assert within_problem_auc(scores, correct, [[4, 5]]) is None


def test_first_error_detection():
    values = [[0.9, 0.2, 0.1], [0.9, 0.8, 0.7], [0.9, 0.8, 0.3], [0.4, 0.9]]
    labels = [[True, False, False], [True, True, True], [True, False, False], [True, True]]
    out = first_error_detection(values, labels)
    assert out["error_acc"] == 0.5 and out["correct_acc"] == 0.5 and out["f1"] == 0.5


def test_smoothness():
    p = generate_problems(1, seed=1)[0]
    r = Rollout(p, ["a", "b", "c"], [5, 10, 4], outcome=True)
    out = smoothness([[0.2, 0.6, 0.5]], [r], gamma=1.0)
    assert out["mean_abs_diff"] == pytest.approx(0.25)
    assert out["lipschitz_per_token"] == pytest.approx((0.4 / 10 + 0.1 / 4) / 2)
    # TD(0) targets [0.6, 1.0, 1.0] against values [0.2, 0.6, 0.5]
    assert out["td_error"] == pytest.approx((0.4 + 0.4 + 0.5) / 3)


def test_best_of_n_uses_disjoint_subsets():
    scores = [0.1, 0.9, 0.5, 0.4, 0.3, 0.2]
    correct = [True, False, True, False, False, True]
    pools = [[0, 1, 2, 3], [4, 5]]
    # problem 1: subsets {0,1} -> 1 (wrong), {2,3} -> 2 (right); problem 2: {4,5} -> 4 (wrong)
    assert best_of_n(scores, correct, pools, 2) == pytest.approx((0.5 + 0.0) / 2)
    assert best_of_n(scores, correct, pools, 8) == 0.0


def test_oracle_is_perfect_on_exact_labels():
    rollouts = []
    for p in generate_problems(4, seed=5):
        steps = reference_solution(p).split("\n\n")
        bad = [steps[0].replace("=", "= 9", 1)] + steps[1:]
        for s, ok in ((steps, True), (bad, False)):
            rollouts.append(Rollout(p, s, [len(x) for x in s], ok, labels=step_labels(p, s)))
    out = evaluate_prm(OraclePRM(), rollouts, ns=[2])
    assert out["step_auc"] == 1.0 and out["first_error"]["f1"] == 1.0
    assert out["best_of_n"]["last"]["2"] == 1.0 and out["within_problem_auc"]["last"] == 1.0


def test_majority_of_n():
    answers = ["1", "2", "2", None, "3", "3"]
    correct = [True, False, False, False, True, True]
    assert majority_of_n(answers, correct, [[0, 1, 2, 3], [4, 5]], 4) == pytest.approx(0.5)
    # weighted: one confident "1" outweighs two doubtful "2"s; "3" wins its pool either way
    weights = [0.9, 0.3, 0.4, 0.0, 0.2, 0.1]
    assert majority_of_n(answers, correct, [[0, 1, 2, 3], [4, 5]], 4, weights) == pytest.approx(1.0)
