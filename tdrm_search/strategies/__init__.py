"""Search strategies. Each is a generator over one problem's tree: it yields the expansions it wants
(a list of `Expand`), receives the new scored nodes for each, and returns when its budget is spent.
The driver runs every problem's generator in lockstep, so all frontiers share one generate call."""

from collections.abc import Callable

from tdrm_search.strategies.beam import beam, dvts
from tdrm_search.strategies.best_of_n import best_of_n, greedy
from tdrm_search.strategies.mcts import mcts
from tdrm_search.strategies.particle_filter import particle_filter
from tdrm_search.types import Strategy

STRATEGIES: dict[str, Callable[..., Strategy]] = {
    "greedy": greedy,
    "best_of_n": best_of_n,
    "beam": beam,
    "dvts": dvts,
    "mcts": mcts,
    "particle_filter": particle_filter,
}
