"""MCTS over reasoning steps: PUCT selection, PRM value at expanded nodes, backup, no rollouts.

Each simulation walks from the root by PUCT to a node without children, expands it into `children`
sampled steps, takes their PRM values as the leaf evaluation, and backs the best of them up the path.
A round runs up to `parallel` simulations at once (no more than the budget left can give `children` each):
each selected path takes a virtual loss (a visit worth 0) so the next selection looks elsewhere, and the
loss is taken back before the real backup.
Finished nodes are never re-expanded; a node whose children are all finished or exhausted is exhausted.
If the simulations end before any path finishes, the most visited path is completed in one rollout, so a
search always returns a solution.
"""

from __future__ import annotations

import math

from tdrm_search.config import SearchConfig
from tdrm_search.scheduler import Expand
from tdrm_search.strategies.best_of_n import Strategy
from tdrm_search.tree import ROOT, Tree


def puct(tree: Tree, parent: int, child: int, c_puct: float) -> float:
    p, c = tree.nodes[parent], tree.nodes[child]
    q = c.value_sum / c.visits if c.visits else 0.0
    prior = 1.0 / len(p.children)
    return q + c_puct * prior * math.sqrt(p.visits) / (1 + c.visits)


def select_leaf(tree: Tree, cfg: SearchConfig, exhausted: set[int]) -> list[int] | None:
    """The path from the root to the node to expand, or None when the whole tree is exhausted."""
    path = [ROOT]
    while tree.nodes[path[-1]].children:
        options = [c for c in tree.nodes[path[-1]].children if c not in exhausted]
        if not options:
            exhausted.add(path[-1])
            if path[-1] == ROOT:
                return None
            path = [ROOT]
            continue
        path.append(max(options, key=lambda c: puct(tree, path[-1], c, cfg.c_puct)))
    return path


def backup(tree: Tree, path: list[int], value: float, visits: int = 1) -> None:
    for node in path:
        tree.nodes[node].visits += visits
        tree.nodes[node].value_sum += value


def most_visited_leaf(tree: Tree) -> int:
    """Follow the most visited child from the root: MCTS's usual final choice."""
    node = ROOT
    while tree.nodes[node].children:
        node = max(tree.nodes[node].children, key=lambda c: (tree.nodes[c].visits, tree.nodes[c].value or 0.0))
    return node


def select_leaves(tree: Tree, cfg: SearchConfig, exhausted: set[int], count: int) -> list[list[int]]:
    """Up to `count` distinct paths to expand, kept apart by virtual loss (undone before returning)."""
    paths: list[list[int]] = []
    while len(paths) < count:
        path = select_leaf(tree, cfg, exhausted)
        if path is None or any(path[-1] == p[-1] for p in paths):
            break
        backup(tree, path, 0.0)
        paths.append(path)
    for path in paths:
        backup(tree, path, 0.0, visits=-1)
    return paths


def mcts(tree: Tree, cfg: SearchConfig) -> Strategy:
    exhausted: set[int] = set()
    finished = simulations = 0
    while simulations < cfg.mcts_simulations and finished < cfg.n:
        # as many leaves as the budget can give a full `children` each (never more finished than n)
        width = min(cfg.parallel, cfg.mcts_simulations - simulations, max(1, (cfg.n - finished) // cfg.children))
        paths = select_leaves(tree, cfg, exhausted, width)
        if not paths:
            return
        kids_per_path = yield [Expand(path[-1], min(cfg.children, cfg.n - finished)) for path in paths]
        simulations += len(paths)
        for path, kids in zip(paths, kids_per_path, strict=True):
            for kid in kids:
                node = tree.nodes[kid]
                node.visits, node.value_sum = 1, node.value
                if node.terminal is not None:
                    finished += 1
                    exhausted.add(kid)
            backup(tree, path, max(tree.nodes[k].value for k in kids))
    if finished == 0:  # simulations ran out before any path finished: complete the most visited one
        yield [Expand(most_visited_leaf(tree), 1, whole=True)]
