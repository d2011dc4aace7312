"""MCTS: copies of a step are one option, progressive widening, parallel simulations, and more budget never
costing accuracy with the exact checker on the lab."""

from __future__ import annotations

import pytest
from synthetic import StepPolicy, StepPRM

from tdrm_search import search, search_batch
from tdrm_search.prms.oracle import OraclePRM
from tdrm_search.strategies.mcts import options
from tdrm_search.tasks.lab import generate_problems
from tdrm_search.tree import ROOT, Tree
from tdrm_search.types import Problem


class CopyPolicy(StepPolicy):
    """Every sample of a request is the same good step (a policy sure of itself): all siblings are copies."""

    def sample(self, prefix, k):
        return super().sample(prefix, 0)


def test_copies_of_a_step_are_one_option_with_the_share_of_samples_as_prior():
    tree = Tree.new(Problem("Q?"), [0])
    kids = [tree.add(ROOT, ids, "s") for ids in ([5, 6], [7], [5, 6], [5, 6])]
    assert options(tree, ROOT) == {kids[0]: 0.75, kids[1]: 0.25}
    grandchild = tree.add(kids[1], [5, 6], "s")  # same tokens under another parent: not a copy
    assert options(tree, kids[1]) == {grandchild: 1.0}


def test_an_exhausted_node_samples_again_until_that_brings_nothing_new():
    policy = CopyPolicy()
    r = search("Q?", policy, StepPRM(), method="mcts", n=16, parallel=1)
    depth = {n.depth: [] for n in r.tree.nodes}
    for node, n in enumerate(r.tree.nodes):
        depth[n.depth].append(node)
    # root, step 1 and step 2 expanded once each; step 2 (whose answers are all finished) is widened once and brings
    # only copies, so it is exhausted; then step 1, then the root are widened once each, with the same result
    assert [len(prefix) for prefix, _ in policy.requests] == [1, 2, 3, 3, 2, 1]
    assert {k: len(v) for k, v in depth.items()} == {0: 1, 1: 8, 2: 8, 3: 8}
    assert len(r.candidates) == 8 and r.answer == "1"  # the tree ran dry before the budget of 16


def test_parallel_mcts_batches_simulations_and_leaves_no_virtual_loss():
    runs = {p: search("Q?", StepPolicy(), StepPRM(), method="mcts", n=16, simulations=12, parallel=p) for p in (1, 4)}
    assert runs[4].stats["generate_calls"] < runs[1].stats["generate_calls"]
    for r in runs.values():
        tree, simulations = r.tree, r.tree.nodes[0].visits
        children_visits = sum(tree.nodes[c].visits - 1 for c in tree.nodes[0].children)  # each child starts at 1
        assert 1 < simulations <= 12
        assert children_visits == simulations - 1  # every backup but the root's own expansion, none virtual


@pytest.mark.vllm
def test_more_budget_never_costs_accuracy_and_mcts_spends_no_more_than_beam(vllm_lab_policy):
    """With the exact checker on 64 lab problems: n = 4 -> 16 -> 64 never loses accuracy, and MCTS at n = 16 generates
    no more tokens than beam search at n = 16 (before copies were merged it generated 2.6x beam's tokens)."""
    problems = generate_problems(64, seed=11)

    def run(method: str, n: int) -> tuple[int, int]:
        results = search_batch(problems, vllm_lab_policy, OraclePRM(), method=method, n=n)
        return sum(bool(r.correct) for r in results), sum(r.stats["generated_tokens"] for r in results)

    mcts = [run("mcts", n) for n in (4, 16, 64)]
    accuracy = [right for right, _ in mcts]
    assert accuracy == sorted(accuracy) and accuracy[-1] > accuracy[0], mcts
    assert mcts[1][1] <= run("beam", 16)[1]
