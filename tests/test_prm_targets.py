"""Target builders against hand-computed values (docs/method.md §1), and bad input."""

from __future__ import annotations

import pytest

from prm_train.data import Rollout, read_rollouts, write_rollouts
from prm_train.targets import (
    TargetSpec,
    mc_targets,
    n_step_targets,
    outcome_targets,
    rollout_targets,
    td0_targets,
    td_lambda_targets,
)
from tdrm_search.tasks.lab import generate_problems

V = [0.5, 0.8, 0.2, 0.9]  # V(s_0..s_3); V(s_3) is terminal and replaced by the outcome
G = 0.9


def approx(xs):
    return pytest.approx(xs, abs=1e-12)


def test_outcome_and_mc():
    assert outcome_targets(3, 1.0) == [1.0, 1.0, 1.0]
    assert mc_targets([0, 2, 4], 4, 1.0, hard=False) == approx([0.0, 0.5, 1.0, 1.0])
    assert mc_targets([0, 2, 4], 4, 0.0, hard=True) == approx([0.0, 1.0, 1.0, 0.0])


def test_td0_bootstraps_next_value_and_stops_at_outcome():
    # y_t = γ V(s_{t+1}); the step before the end reads the outcome (1), not V(s_3) = 0.9
    assert td0_targets(V, 1.0, G) == approx([0.72, 0.18, 0.9, 1.0])
    assert td0_targets(V, 0.0, 1.0) == approx([0.8, 0.2, 0.0, 0.0])


def test_n_step_and_lookahead_past_the_end():
    assert n_step_targets(V, 1.0, 2, G) == approx([0.81 * 0.2, 0.81, 0.9, 1.0])
    # n beyond the end: the full discounted outcome, γ^(T-1-t) z
    assert n_step_targets(V, 1.0, 10, G) == approx([0.729, 0.81, 0.9, 1.0])
    assert n_step_targets(V, 1.0, 1, G) == td0_targets(V, 1.0, G)


def test_td_lambda_matches_the_forward_view():
    # t=0: (1-λ)(G^1 + λ G^2) + λ² G^3 = 0.5 (0.72 + 0.5·0.162) + 0.25·0.729
    assert td_lambda_targets(V, 1.0, G, 0.5) == approx([0.58275, 0.495, 0.9, 1.0])
    assert td_lambda_targets(V, 1.0, G, 0.0) == approx(td0_targets(V, 1.0, G))
    assert td_lambda_targets(V, 1.0, G, 1.0) == approx(n_step_targets(V, 1.0, 10, G))


def test_shaped_rewards_and_clipping():
    # G^(1) = 0.1 + 0.5, G^(2) = 0.1 - 0.2 + 1: λ-return 0.5·0.6 + 0.5·0.9
    assert td_lambda_targets([0.5, 0.5, 0.5], 1.0, 1.0, 0.5, rewards=[0.1, -0.2]) == approx([0.75, 0.8, 1.0])
    assert td0_targets([0.9, 0.95, 0.0], 1.0, 1.0, rewards=[0.3, 0.3]) == [1.0, 1.0, 1.0]
    assert td0_targets([0.2, 0.3, 0.7], 0.0, 1.0, rewards=[-0.5, -0.5]) == [0.0, 0.0, 0.0]


def test_single_step_rollout_is_its_outcome():
    assert td_lambda_targets([0.3], 1.0, 0.8, 0.7) == [1.0]
    assert n_step_targets([0.3], 0.0, 3, 0.8) == [0.0]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: td0_targets([0.5, 1.2], 1.0, 1.0), "values must lie in"),
        (lambda: td0_targets([], 1.0, 1.0), "at least one step"),
        (lambda: td0_targets([0.5, 0.5], 1.0, 1.5), "gamma"),
        (lambda: td_lambda_targets([0.5, 0.5], 1.0, 1.0, -0.1), "lambda"),
        (lambda: n_step_targets([0.5, 0.5], 1.0, 0, 1.0), "n must be"),
        (lambda: td0_targets([0.5, 0.5], 1.0, 1.0, rewards=[0.1, 0.1]), "rewards"),
        (lambda: mc_targets([5], 4, 1.0, hard=False), "MC counts"),
        (lambda: TargetSpec(kind="td2"), "unknown target kind"),
    ],
)
def test_bad_input_gets_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def rollout(**kw) -> Rollout:
    problem = generate_problems(1, seed=3)[0]
    fields = dict(problem=problem, steps=["1 + 2 = 3\n\n", "The answer is 3."], step_tokens=[11, 16], outcome=True)
    return Rollout(**{**fields, **kw})


def test_rollout_targets_dispatch():
    r = rollout(mc_success=[3], mc_samples=4)
    assert rollout_targets(r, TargetSpec("outcome")) == [1.0, 1.0]
    assert rollout_targets(r, TargetSpec("mc_soft")) == [0.75, 1.0]
    assert rollout_targets(r, TargetSpec("td0", gamma=0.5), values=[0.2, 0.1]) == [0.5, 1.0]
    assert rollout_targets(r, TargetSpec("td_lambda", step_reward=-0.25), values=[0.2, 0.1]) == [0.75, 1.0]
    with pytest.raises(ValueError, match="bootstrap"):
        rollout_targets(r, TargetSpec("td_lambda"))
    with pytest.raises(ValueError, match="no MC completions"):
        rollout_targets(rollout(), TargetSpec("mc_hard"))
    assert rollout_targets(rollout(labels=[False, False], outcome=False), TargetSpec("exact")) == [0.0, 0.0]
    with pytest.raises(ValueError, match="no exact step labels"):
        rollout_targets(rollout(), TargetSpec("exact"))


def test_rollout_validation_and_jsonl_round_trip(tmp_path):
    with pytest.raises(ValueError, match="no steps"):
        rollout(steps=[], step_tokens=[])
    with pytest.raises(ValueError, match="labels"):
        rollout(labels=[True])
    with pytest.raises(ValueError, match="out of range"):
        rollout(mc_success=[5], mc_samples=4)
    r = rollout(labels=[True, True], mc_success=[2], mc_samples=4)
    path = tmp_path / "r.jsonl"
    write_rollouts(path, [r, r])
    assert [x.to_dict() for x in read_rollouts(path)] == [r.to_dict()] * 2
    path.write_text(path.read_text() + '{"problem": {"question": "q"}, "steps": [], "step_tokens": [], "outcome": 0}\n')
    with pytest.raises(ValueError, match=r"r.jsonl:3: .*no steps"):
        read_rollouts(path)
