"""Particle filtering and particle Gibbs on a synthetic policy and PRM whose every value is known in advance."""

from __future__ import annotations

import itertools

import pytest
from synthetic import StepPolicy, StepPRM

from tdrm_search import search


def test_resampling_keeps_high_value_particles_and_copies_share_their_node():
    policy, prm = StepPolicy(), StepPRM()
    r = search("Q?", policy, prm, method="particle_filter", n=8, seed=0, pf_temperature=0.2)
    tree = r.tree
    assert r.answer == "1" and len(r.candidates) == 8
    assert r.stats["generate_calls"] == 3 and len(tree.nodes) == 1 + 3 * 8  # each round adds n nodes, no copy
    for depth in (1, 2):
        held = {i: n.visits for i, n in enumerate(tree.nodes) if n.depth == depth and n.visits}
        assert sum(held.values()) == 8  # every particle sits on a node
        assert all(tree.nodes[i].value == 0.9 for i in held)  # resampling kept only good particles
    # k copies of a node are one request for k steps; no prefix is requested twice
    expanded = {tree.prefix_ids(i): n.visits for i, n in enumerate(tree.nodes) if n.visits and not n.terminal}
    assert dict(policy.requests) == {(0,): 8} | expanded and len(policy.requests) == len(expanded) + 1
    # only each new step is scored, every path once
    assert all(q.start == len(q.steps) - 1 for q in prm.requests)
    assert len({q.steps for q in prm.requests}) == len(prm.requests)


def test_particle_gibbs_reruns_the_filter_around_a_reference():
    r = search("Q?", StepPolicy(), StepPRM(), method="particle_filter", n=8, seed=0, pf_temperature=0.2, iterations=2)
    assert r.answer == "1" and r.stats["generate_calls"] == 6
    assert len(r.candidates) == 4 + 3  # 4 particles, then 3 free ones beside the reference
    assert all(n.visits == 0 for n in r.tree.nodes if n.value == 0.1)
    first_run = range(1, 1 + 3 * 4)  # 4 particles, 3 rounds
    held = {i: n.visits for i, n in enumerate(r.tree.nodes) if n.depth == 1}
    assert sum(held.values()) == 4 + 4  # the reference is one of the second run's 4 particles
    assert sum(v for n, v in held.items() if n in first_run) >= 4 + 1  # the reference's first step, held again


@pytest.mark.parametrize(
    "freeze_finished, iterations, ess_threshold", itertools.product([False, True], [1, 2], [None, 0.5])
)
def test_budget_and_seed_hold_when_particles_finish_early(freeze_finished, iterations, ess_threshold):
    """Bad steps end their solution at once, so resampling drops finished particles the budget has paid for."""
    options = dict(freeze_finished=freeze_finished, iterations=iterations, ess_threshold=ess_threshold)
    for seed in range(4):
        runs = [
            search("Q?", StepPolicy(bad_ends=True), StepPRM(), method="particle_filter", n=8, seed=seed, **options)
            for _ in range(2)
        ]
        particles = 8 // iterations
        assert 1 <= len(runs[0].candidates) <= particles + (iterations - 1) * (particles - 1)  # one per particle
        assert [t.node for t in runs[0].candidates] == [t.node for t in runs[1].candidates]
        assert [n.visits for n in runs[0].tree.nodes] == [n.visits for n in runs[1].tree.nodes]
