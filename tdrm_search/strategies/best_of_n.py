"""Greedy decoding and Best-of-N: whole solutions from the root, every step scored by the PRM."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tdrm_search.tree import ROOT, Tree
from tdrm_search.types import Expand, Strategy

if TYPE_CHECKING:
    from tdrm_search.config import SearchConfig  # not at run time: config imports the strategies


def greedy(tree: Tree, cfg: SearchConfig) -> Strategy:
    """One temperature-0 solution."""
    yield [Expand(ROOT, 1, whole=True, greedy=True)]


def best_of_n(tree: Tree, cfg: SearchConfig) -> Strategy:
    """n independent samples; the driver aggregates and selects among them. With a stopping rule they come in
    waves of `wave`, so the driver can check the rule between waves."""
    size = cfg.wave if cfg.stop else cfg.n
    for start in range(0, cfg.n, size):
        yield [Expand(ROOT, min(size, cfg.n - start), whole=True)]
