"""Particle filtering and particle Gibbs over reasoning steps (Puri et al., arXiv 2502.01618).

Every round each live particle takes one step (all particles of all problems in one generate call); each particle
is weighted by softmax(logit(V) / `pf_temperature`) of its PRM value V (its path's value under `aggregation`:
with `last`, the current step's) and the particles are resampled multinomially, every round or only when the
effective sample size falls below `ess_threshold` of their number. Finished particles keep their weight and
compete (with `freeze_finished` they keep their place instead). A run may finish one solution per particle: live
copies beyond what that budget has left are dropped.

A particle is a tree node, so resampled copies share it: k copies of a live node are one request for k next steps,
and no prefix is generated or scored twice. Each round adds the particles it leaves on a node to the node's
`visits`: the lineage. Particle Gibbs (`iterations` > 1) reruns the filter with n // iterations particles, one of them a
reference path drawn by weight from the last run's particles: at round t it is its first t steps, it competes in
resampling (free particles may copy its prefix) and is always kept (conditional SMC).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Generator
from typing import TYPE_CHECKING

from tdrm_search.aggregate import aggregate
from tdrm_search.tree import ROOT, Tree
from tdrm_search.types import Expand, Strategy

if TYPE_CHECKING:
    from tdrm_search.config import SearchConfig  # not at run time: config imports the strategies

EPS = 1e-6  # values are clipped to [EPS, 1 - EPS] before the logit, so 0 and 1 stay finite


def finished(tree: Tree, node: int) -> bool:
    return tree.nodes[node].terminal is not None


def weights(tree: Tree, cfg: SearchConfig, particles: list[int]) -> list[float]:
    """softmax(logit(V) / pf_temperature) over the particles' PRM values."""
    values = [min(max(aggregate(tree.step_values(p), cfg.aggregation), EPS), 1 - EPS) for p in particles]
    logits = [math.log(v / (1 - v)) / cfg.pf_temperature for v in values]
    top = max(logits)
    exps = [math.exp(x - top) for x in logits]
    total = sum(exps)
    return [e / total for e in exps]


def resample(tree: Tree, cfg: SearchConfig, rng: random.Random, free: list[int], reference: list[int]) -> list[int]:
    """The free particles after one round: drawn by weight from themselves and the reference (when one is given)."""
    frozen = [p for p in free if cfg.freeze_finished and finished(tree, p)]
    pool = [p for p in free + reference if not (cfg.freeze_finished and finished(tree, p))]
    draws = len(free) - len(frozen)
    if not draws:
        return free
    w = weights(tree, cfg, pool)
    if cfg.ess_threshold is not None and 1 / sum(x * x for x in w) >= cfg.ess_threshold * len(pool):
        return free
    return frozen + rng.choices(pool, w, k=draws)


def within_budget(tree: Tree, particles: list[int], limit: int) -> list[int]:
    """The particles less the live copies that could take the tree past `limit` finished solutions."""
    live = [p for p in particles if not finished(tree, p)]
    return [p for p in particles if finished(tree, p)] + live[: limit - len(tree.leaves())]


def filter_once(
    tree: Tree, cfg: SearchConfig, rng: random.Random, reference: int | None
) -> Generator[list[Expand], list[list[int]], list[int]]:
    """One particle filter run; returns its final particles, all finished (the reference's whole path among them)."""
    free = [ROOT] * (cfg.particles - (reference is not None))
    limit = len(tree.leaves()) + len(free)  # the run's budget: one solution per free particle
    depth = 0
    while live := [p for p in free if not finished(tree, p)]:
        children = yield [Expand(node, k) for node, k in Counter(live).items()]
        depth += 1
        held = [] if reference is None else [tree.path(reference)[:depth][-1]]
        stepped = [c for kids in children for c in kids]
        free = resample(tree, cfg, rng, [p for p in free if finished(tree, p)] + stepped, held)
        free = within_budget(tree, free, limit)
        for node, copies in Counter(free + held).items():
            tree.backup([node], copies * tree.nodes[node].value, visits=copies)
    return free + ([] if reference is None else [reference])


def particle_filter(tree: Tree, cfg: SearchConfig) -> Strategy:
    """Particle filtering, or particle Gibbs with `iterations` > 1; the driver selects among the finished paths."""
    rng = random.Random(cfg.seed)
    particles: list[int] = []
    for _ in range(cfg.iterations):
        reference = rng.choices(particles, weights(tree, cfg, particles))[0] if particles else None
        particles = yield from filter_once(tree, cfg, rng, reference)
