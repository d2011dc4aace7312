"""MCTS over reasoning steps: PUCT selection, PRM value at expanded nodes, backup, no rollouts.

Each simulation walks from the root by PUCT to a node without children, expands it into `children`
sampled steps, takes their PRM values as the leaf evaluation, and backs the best of them up the path.
Copies of a sibling's step (the policy sampled the same tokens twice) are one option to selection, and the share
of samples that drew a step is its prior: a frequent step is the policy's preference, not several branches.
A round runs up to `parallel` simulations at once (no more than the budget left can give `children` each):
each selected path takes a virtual loss (a visit worth 0) so the next selection looks elsewhere, and the
loss is taken back before the real backup.
Finished nodes are never expanded. A node whose every step is finished or exhausted samples `children` more
steps whenever selection reaches it (progressive widening), until a widening brings no new step: then it is
exhausted too.
If the simulations end before any path finishes, the most visited path is completed in one rollout, so a
search always returns a solution.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from tdrm_search.tree import ROOT, Tree
from tdrm_search.types import Expand, Strategy

if TYPE_CHECKING:
    from tdrm_search.config import SearchConfig  # not at run time: config imports the strategies

ChildScore = Callable[[Tree, int, int, float, float], float]  # (tree, parent, child, prior, c_puct) -> score


def puct(tree: Tree, parent: int, child: int, prior: float, c_puct: float) -> float:
    """AlphaZero's PUCT: mean backed-up value plus an exploration bonus in proportion to the child's prior."""
    p, c = tree.nodes[parent], tree.nodes[child]
    q = c.value_sum / c.visits if c.visits else 0.0
    return q + c_puct * prior * math.sqrt(p.visits) / (1 + c.visits)


def options(tree: Tree, node: int) -> dict[int, float]:
    """The distinct steps below `node` (each its first sampled copy) and their priors: the share of `node`'s
    samples that drew that step."""
    children = tree.nodes[node].children
    counts = Counter(tree.step_key(c) for c in children)
    first = {tree.step_key(c): c for c in reversed(children)}
    return {first[key]: count / len(children) for key, count in counts.items()}


def select_leaf(tree: Tree, cfg: SearchConfig, exhausted: set[int], score: ChildScore) -> list[int] | None:
    """The path from the root to the node to expand: a node without children, or one whose every step is
    exhausted (it samples more steps; progressive widening). None when the whole tree is exhausted."""
    path = [ROOT]
    while tree.nodes[path[-1]].children:
        priors = {c: p for c, p in options(tree, path[-1]).items() if c not in exhausted}
        if priors:
            path.append(max(priors, key=lambda c: score(tree, path[-1], c, priors[c], cfg.c_puct)))
        else:  # only the root can be exhausted here (selection never steps into an exhausted child)
            return None if path[-1] in exhausted else path
    return path


def stale(tree: Tree, node: int, kids: list[int]) -> bool:
    """Whether sampling `kids` under an already expanded `node` brought only copies of steps it had."""
    before = {tree.step_key(c) for c in tree.nodes[node].children if c not in kids}
    return bool(before) and all(tree.step_key(k) in before for k in kids)


def most_visited_leaf(tree: Tree) -> int:
    """Follow the most visited child from the root: MCTS's usual final choice."""
    node = ROOT
    while tree.nodes[node].children:
        node = max(tree.nodes[node].children, key=lambda c: (tree.nodes[c].visits, tree.nodes[c].value or 0.0))
    return node


def select_leaves(tree: Tree, cfg: SearchConfig, exhausted: set[int], count: int, score: ChildScore) -> list[list[int]]:
    """Up to `count` distinct paths to expand, kept apart by virtual loss (undone before returning)."""
    paths: list[list[int]] = []
    while len(paths) < count:
        path = select_leaf(tree, cfg, exhausted, score)
        if path is None or any(path[-1] == p[-1] for p in paths):
            break
        tree.backup(path, 0.0)
        paths.append(path)
    for path in paths:
        tree.backup(path, 0.0, visits=-1)
    return paths


def mcts_with(score: ChildScore, tree: Tree, cfg: SearchConfig) -> Strategy:
    """MCTS whose selection walks down by `score` (a plain function, as mctx passes its selection functions)."""
    exhausted: set[int] = set()
    finished = simulations = 0
    while simulations < cfg.mcts_simulations and finished < cfg.n:
        # as many leaves as the budget can give a full `children` each (never more finished than n)
        width = min(cfg.parallel, cfg.mcts_simulations - simulations, max(1, (cfg.n - finished) // cfg.children))
        paths = select_leaves(tree, cfg, exhausted, width, score)
        if not paths:
            return
        kids_per_path = yield [Expand(path[-1], min(cfg.children, cfg.n - finished)) for path in paths]
        simulations += len(paths)
        for path, kids in zip(paths, kids_per_path, strict=True):
            if stale(tree, path[-1], kids):
                exhausted.add(path[-1])  # sampling more brought no new step: nothing left to find here
            for kid in kids:
                tree.backup([kid], tree.nodes[kid].value)  # a new node's first visit: its own PRM value
                if tree.nodes[kid].terminal is not None:
                    finished += 1
                    exhausted.add(kid)
            tree.backup(path, max(tree.nodes[k].value for k in kids))
    if finished == 0:  # simulations ran out before any path finished: complete the most visited one
        yield [Expand(most_visited_leaf(tree), 1, whole=True)]


mcts = partial(mcts_with, puct)
