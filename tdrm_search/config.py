"""One config object for every search method."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from tdrm_search.aggregate import AGGREGATIONS, SELECTIONS

METHODS = ("greedy", "best_of_n", "beam", "dvts", "mcts")


@dataclass(frozen=True)
class SearchConfig:
    """Budget `n` is the number of complete solutions (leaves) a method may produce.

    beam: `beam_width` beams (default n // expansions), each expanded into `expansions` children per round,
          as in search-and-learn; beam_width=1 is TDRM's greedy step search (sample k, keep the best).
    dvts: n // expansions independent subtrees, each a width-1 beam with `expansions` children per round.
    mcts: up to `simulations` PUCT simulations (default 4 * n), `children` steps per expansion, `parallel`
          simulations per round (virtual loss keeps their leaves apart).
    """

    method: str = "beam"
    n: int = 16
    seed: int = 0
    temperature: float = 0.8
    top_p: float = 1.0
    delimiter: str = "\n\n"
    max_step_tokens: int = 256
    max_steps: int = 32
    max_tokens: int = 2048
    aggregation: str = "last"
    selection: str = "argmax"
    beam_width: int | None = None
    expansions: int = 4
    simulations: int | None = None
    children: int = 4
    parallel: int = 4
    c_puct: float = 1.0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {list(METHODS)}")
        for name in ("n", "max_step_tokens", "max_steps", "max_tokens", "expansions", "children", "parallel"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("beam_width", "simulations"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}")
        if not self.delimiter:
            raise ValueError("delimiter must not be empty")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"unknown aggregation {self.aggregation!r}; choose one of {sorted(AGGREGATIONS)}")
        if self.selection not in SELECTIONS:
            raise ValueError(f"unknown selection {self.selection!r}; choose one of {list(SELECTIONS)}")

    @classmethod
    def make(cls, method: str, n: int, seed: int, **options) -> SearchConfig:
        """Build from `search()` keyword options, naming any option that does not exist."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown search option(s) {unknown}; known: {sorted(known - {'method', 'n', 'seed'})}")
        return cls(method=method, n=n, seed=seed, **options)

    @property
    def beams(self) -> int:
        return min(self.n, self.beam_width or max(1, self.n // self.expansions))

    @property
    def mcts_simulations(self) -> int:
        return self.simulations or 4 * self.n
