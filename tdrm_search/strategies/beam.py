"""Step-level beam search and diverse verifier tree search (DVTS), as in search-and-learn.

Each round a group of `width` live beams samples `width * expansions` next steps; the PRM scores them; the best
`width` distinct children of each group live on. Finished children leave the beam and count against the budget n.
A round's samples go to a group's beams in proportion to their PRM values (`allocation="value"`, as REBASE does),
or evenly (`"even"`, search-and-learn's beam).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tdrm_search.aggregate import aggregate
from tdrm_search.tree import ROOT, Tree
from tdrm_search.types import Expand, Strategy

if TYPE_CHECKING:
    from tdrm_search.config import SearchConfig  # not at run time: config imports the strategies


def split_budget(total: int, weights: list[float]) -> list[int]:
    """`total` children over parents in proportion to `weights` (largest remainders; ties to the earlier parent),
    evenly when every weight is 0. Some parents may get 0."""
    if sum(weights) <= 0:
        weights = [1.0] * len(weights)
    whole = sum(weights)
    quotas = [total * w / whole for w in weights]
    out = [int(q) for q in quotas]
    for i in sorted(range(len(out)), key=lambda i: out[i] - quotas[i])[: total - sum(out)]:
        out[i] += 1
    return out


def weight(tree: Tree, node: int, allocation: str) -> float:
    """A live beam's claim on the round's samples: its PRM value, or 1 for all ("even"; and the unscored root)."""
    value = tree.nodes[node].value
    return 1.0 if allocation == "even" or value is None else value


def grouped_beam(tree: Tree, cfg: SearchConfig, groups: list[list[int]], width: int, finished: int) -> Strategy:
    """Advance every group (a list of live nodes) in lockstep until n solutions are finished."""
    while groups and finished < cfg.n:
        # Each group samples width * expansions children over its live nodes (the root alone gets them all),
        # never more in total than the budget has left.
        wanted = [
            (node, c)
            for g in groups
            for node, c in zip(
                g, split_budget(width * cfg.expansions, [weight(tree, x, cfg.allocation) for x in g]), strict=True
            )
        ]
        left, asks = cfg.n - finished, []
        for node, c in wanted:
            if min(c, left):
                asks.append(Expand(node, min(c, left)))
            left -= min(c, left)
        children = iter((yield asks))
        by_node = {e.node: next(children) for e in asks}
        next_groups = []
        for group in groups:
            kids = sorted(
                (c for node in group for c in by_node.get(node, [])),
                key=lambda c: aggregate(tree.step_values(c), cfg.aggregation),
                reverse=True,
            )
            finished += sum(tree.nodes[c].terminal is not None for c in kids)
            keep = distinct(tree, kids)[:width]
            if keep:
                next_groups.append(keep)
        groups = next_groups


def distinct(tree: Tree, kids: list[int]) -> list[int]:
    """The unfinished children in order, a copy of a sibling's step (same parent, same tokens) left out: copies
    would take beam slots that distinct steps could use, and the search would collapse onto one path."""
    seen: set[tuple[int | None, tuple[int, ...]]] = set()
    out = []
    for c in kids:
        key = tree.step_key(c)
        if tree.nodes[c].terminal is None and key not in seen:
            seen.add(key)
            out.append(c)
    return out


def beam(tree: Tree, cfg: SearchConfig) -> Strategy:
    """One beam of `cfg.beams` live nodes (one: TDRM's greedy step search)."""
    yield from grouped_beam(tree, cfg, [[ROOT]], cfg.beams, finished=0)


def dvts(tree: Tree, cfg: SearchConfig) -> Strategy:
    """n // expansions diverse first steps, then an independent width-1 beam below each."""
    subtrees = max(1, cfg.n // cfg.expansions)
    (roots,) = yield [Expand(ROOT, subtrees)]
    finished = sum(tree.nodes[r].terminal is not None for r in roots)
    groups = [[r] for r in roots if tree.nodes[r].terminal is None]
    yield from grouped_beam(tree, cfg, groups, width=1, finished=finished)
