"""Greedy decoding and Best-of-N: whole solutions from the root, every step scored by the PRM."""

from __future__ import annotations

from tdrm_search.config import SearchConfig
from tdrm_search.tree import ROOT, Tree
from tdrm_search.types import Expand, Strategy


def greedy(tree: Tree, cfg: SearchConfig) -> Strategy:
    """One temperature-0 solution."""
    yield [Expand(ROOT, 1, whole=True, greedy=True)]


def best_of_n(tree: Tree, cfg: SearchConfig) -> Strategy:
    """n independent samples; the driver aggregates and selects among them."""
    yield [Expand(ROOT, cfg.n, whole=True)]
