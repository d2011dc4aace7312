"""Training data from the engine's own search trees, and the targets that read those trees."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from prm_train.collect import collect
from prm_train.config import CollectConfig
from prm_train.data import Rollout, read_rollouts, write_rollouts
from prm_train.targets import TargetSpec, all_targets, tree_mc_values, tree_structure, tree_td0_targets
from tdrm_search.prms.oracle import OraclePRM
from tdrm_search.tasks import lab
from tdrm_search.types import Problem

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
P = Problem("q", "1", id="p")


def path_rollout(nodes: list[int], outcome: bool, tree: int = 0) -> Rollout:
    return Rollout(P, [f"s{n}" for n in nodes], [1] * len(nodes), outcome, tree=tree, nodes=nodes)


# A tree by hand: 1 -> {2, 3}; 2 -> {4 (right), 5 (wrong)}; 3 is a wrong finished leaf; 6 -> 7 (right), a second
# root child.
TREE = [path_rollout([1, 2, 4], True), path_rollout([1, 2, 5], False), path_rollout([1, 3], False)]
TREE += [path_rollout([6, 7], True)]


def test_tree_structure_and_monte_carlo_shares_by_hand():
    children, outcomes = tree_structure(TREE)
    assert children == {-1: [1, 6], 1: [2, 3], 2: [4, 5], 6: [7]}
    assert outcomes == {4: 1.0, 5: 0.0, 3: 0.0, 7: 1.0}
    mc = tree_mc_values(children, outcomes, -1)
    assert mc[2] == 0.5 and mc[1] == pytest.approx(1 / 3) and mc[6] == 1.0 and mc[4] == 1.0 and mc[3] == 0.0


def test_tree_td0_is_the_mean_of_the_childrens_bootstrapped_values():
    children, outcomes = tree_structure(TREE)
    values = {1: 0.9, 2: 0.2, 3: 0.7, 6: 0.4, 4: 0.3, 5: 0.6, 7: 0.1}
    y = tree_td0_targets(children, outcomes, values, gamma=1.0)
    assert y[2] == pytest.approx((1.0 + 0.0) / 2)  # both children finished: their outcomes, not their values
    assert y[1] == pytest.approx((0.2 + 0.0) / 2)  # child 2's value, leaf 3's outcome
    assert y[6] == 1.0 and y[4] == 1.0 and y[5] == 0.0
    assert tree_td0_targets(children, outcomes, values, gamma=0.5, reward=0.1)[1] == pytest.approx(0.1 + 0.05)


def test_all_targets_map_node_targets_onto_every_path():
    mc = all_targets(TREE, TargetSpec("tree_mc"))
    assert mc[0] == pytest.approx([1 / 3, 0.5, 1.0]) and mc[2] == pytest.approx([1 / 3, 0.0])
    td_round0 = all_targets(TREE, TargetSpec("tree_td0"))  # no model yet: bootstraps from the tree MC
    assert td_round0[0] == pytest.approx([(0.5 + 0.0) / 2, 0.5, 1.0])
    values = [[0.9, 0.2, 0.3], [0.9, 0.2, 0.6], [0.9, 0.7], [0.4, 0.1]]
    assert all_targets(TREE, TargetSpec("tree_td0"), values)[1] == pytest.approx([0.1, 0.5, 0.0])
    # two trees keep their node ids apart
    other = [path_rollout([1, 2], False, tree=1)]
    assert all_targets(TREE + other, TargetSpec("tree_mc"))[-1] == [0.0, 0.0]


def test_tree_targets_need_trees():
    with pytest.raises(ValueError, match="read a search tree"):
        all_targets([Rollout(P, ["a"], [1], True)], TargetSpec("tree_mc"))
    with pytest.raises(ValueError, match="tree index needs node ids"):
        Rollout(P, ["a"], [1], True, tree=0)


@pytest.fixture(scope="module")
def beam_trees(vllm_lab_policy):
    problems = lab.generate_problems(3, seed=lab.train_seed(5))
    cfg = CollectConfig(method="beam", n=4, mc_samples=2, seed=3)
    return problems, collect(problems, vllm_lab_policy, cfg, prm=OraclePRM(), progress=False)


def test_beam_trees_become_graded_labelled_rollouts_that_share_prefixes(beam_trees):
    problems, (rollouts, stats) = beam_trees
    assert stats.trees == 3 and {r.tree for r in rollouts} == {0, 1, 2}
    for r in rollouts:
        p = problems[r.tree]
        assert r.problem == p and r.outcome == lab.grade(p, "".join(r.steps))
        assert r.labels == lab.step_labels(p, r.steps)
        assert r.values == [float(x) for x in r.labels]  # the oracle guided the search: its values are recorded
        assert len(r.mc_success) == len(r.steps) - 1 and all(0 <= c <= 2 for c in r.mc_success)
    # beam search branches: some first steps are shared by several rollouts of one tree
    firsts = [(r.tree, r.nodes[0]) for r in rollouts]
    assert len(set(firsts)) < len(firsts)
    assert stats.rollout_tokens > 0 and stats.mc_tokens > 0 and stats.mc_prefixes > 0


def test_collected_trees_round_trip_and_train_on_tree_targets(beam_trees, tmp_path):
    rollouts = beam_trees[1][0]
    write_rollouts(tmp_path / "trees.jsonl", rollouts)
    back = read_rollouts(tmp_path / "trees.jsonl")
    assert [(r.tree, r.nodes, r.values) for r in back] == [(r.tree, r.nodes, r.values) for r in rollouts]
    mc = all_targets(back, TargetSpec("tree_mc"))
    assert all(t[-1] == float(r.outcome) for t, r in zip(mc, back, strict=True))


def tdrm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tdrm_search", *args], capture_output=True, text=True, timeout=600)


def test_cli_collects_gsm8k_train_problems_and_refuses_a_hub_test_split(tmp_path):
    train = DATA / "gsm8k_train.jsonl"
    if not train.exists():
        pytest.skip(f"real data {train} is absent (the shared data folder lives beside the repository)")
    out = tmp_path / "gsm8k.jsonl"
    args = ["prm", "collect", "--dataset", f"gsm8k={train}", "--problems", "2", "-n", "2", "--max-tokens", "24"]
    done = tdrm(*args, "--backend", "hf", "--out", str(out))
    assert done.returncode == 0, done.stderr
    rows = [orjson.loads(line) for line in out.read_text().splitlines()]
    assert {row["problem"]["id"] for row in rows} <= {"gsm8k-1", "gsm8k-2"} and rows
    assert rows[0]["problem"]["answer"] == "72" and rows[0]["labels"] is None and rows[0]["nodes"]
    refused = tdrm("prm", "collect", "--dataset", "gsm8k", "--out", str(tmp_path / "x.jsonl"))
    assert refused.returncode != 0 and "test split" in refused.stderr and "Traceback" not in refused.stderr
