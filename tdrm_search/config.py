"""One config object for every search method."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from tdrm_search.aggregate import AGGREGATIONS, SELECTIONS
from tdrm_search.stopping import STOPS, check_stop
from tdrm_search.strategies import STRATEGIES

METHODS = tuple(STRATEGIES)  # the search methods: the strategy registry's names
ALLOCATIONS = ("value", "even")
SCHEDULES = ("auto", "lockstep", "async")  # engine drivers (`engine.search_iter`, `async_driver.py`); auto picks
PER_RUN = ("method", "n", "seed")  # set per search call (and per grid cell by the runner); the rest are options
POSITIVE = ("n", "max_step_tokens", "max_steps", "max_tokens", "expansions", "children", "parallel", "iterations")


@dataclass(frozen=True)
class SearchConfig:
    """Budget `n` is the number of complete solutions (leaves) a method may produce.

    beam: `beam_width` beams (default n // expansions), beam_width * expansions children per round, split over
          the beams by `allocation` ("value": in proportion to their PRM values, as REBASE; "even": `expansions`
          each, as search-and-learn); beam_width=1 is TDRM's greedy step search (sample k, keep the best).
    dvts: n // expansions independent subtrees, each a width-1 beam with `expansions` children per round.
    mcts: up to `simulations` PUCT simulations (default 4 * n), `children` steps per expansion, `parallel`
          simulations per round (virtual loss keeps their leaves apart).
    particle_filter: n particles, one step per round, resampled by softmax(logit(V) / `pf_temperature`);
          `iterations` > 1 is particle Gibbs with n // iterations particles per iteration.
    stop: "consensus" ends a problem's search after the round in which the Beta rule of adaptive consistency
          (`tdrm_search.stopping`) passes at `confidence` on its finished solutions ("weighted_consensus": votes
          weighted by PRM score); best_of_n then samples in waves of `wave`. None: every method spends its budget.
    """

    method: str = field(default="beam", metadata={"choices": METHODS, "help": "search method"})
    n: int = field(default=16, metadata={"help": "budget: complete solutions the method may produce"})
    seed: int = field(default=0, metadata={"help": "sampling seed"})
    temperature: float = field(default=0.8, metadata={"help": "sampling temperature"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass"})
    delimiter: str = field(default="\n\n", metadata={"help": "text that ends a step"})
    max_step_tokens: int = field(default=256, metadata={"help": "tokens per step"})
    max_steps: int = field(default=32, metadata={"help": "steps per solution"})
    max_tokens: int = field(default=2048, metadata={"help": "generated tokens per solution"})
    aggregation: str = field(
        default="last", metadata={"choices": tuple(AGGREGATIONS), "help": "step values -> solution score"}
    )
    selection: str = field(default="argmax", metadata={"choices": SELECTIONS, "help": "how the answer is chosen"})
    beam_width: int | None = field(default=None, metadata={"help": "beam: live beams (default n // expansions)"})
    expansions: int = field(default=4, metadata={"help": "beam / dvts: children per beam per round"})
    allocation: str = field(
        default="value",
        metadata={
            "choices": ALLOCATIONS,
            "help": "beam: a round's samples go to the live beams in proportion to their PRM values, or evenly",
        },
    )
    simulations: int | None = field(default=None, metadata={"help": "mcts: simulations (default 4 n)"})
    children: int = field(default=4, metadata={"help": "mcts: steps sampled per expansion"})
    parallel: int = field(default=4, metadata={"help": "mcts: simulations per round"})
    c_puct: float = field(default=1.0, metadata={"help": "mcts: exploration constant"})
    pf_temperature: float = field(
        default=1.0, metadata={"help": "particle_filter: weights are softmax(logit(value) / pf_temperature)"}
    )
    ess_threshold: float | None = field(
        default=None,
        metadata={"help": "particle_filter: resample only when ESS < this fraction of the particles (none: always)"},
    )
    freeze_finished: bool = field(
        default=False, metadata={"help": "particle_filter: finished particles stay out of resampling"}
    )
    iterations: int = field(
        default=1, metadata={"help": "particle_filter: particle Gibbs iterations of n // iterations particles"}
    )
    stop: str | None = field(
        default=None,
        metadata={"choices": (None, *STOPS), "help": "end a problem's search once its answer is settled (none: never)"},
    )
    confidence: float = field(default=0.95, metadata={"help": "stop: P(leading answer beats the runner-up) to stop"})
    wave: int = field(default=4, metadata={"help": "best_of_n with stop: samples per round"})
    schedule: str = field(
        default="auto",  # async for a server policy, lockstep otherwise: measured, benchmarks/server_search.py
        metadata={
            "choices": SCHEDULES,
            "help": "lockstep: every problem's round in one generate call; async: each problem advances as soon as "
            "its own requests are done (a server policy only); auto: async with a server policy, else lockstep",
        },
    )

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {list(METHODS)}")
        for name in POSITIVE:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("beam_width", "simulations"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.iterations > 1 and self.n // self.iterations < 2:
            raise ValueError(f"iterations={self.iterations} leaves particle Gibbs under 2 particles for n={self.n}")
        if not self.pf_temperature > 0:
            raise ValueError(f"pf_temperature must be > 0, got {self.pf_temperature}")
        if self.ess_threshold is not None and not 0 < self.ess_threshold <= 1:
            raise ValueError(f"ess_threshold must lie in (0, 1], got {self.ess_threshold}")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}")
        if not self.delimiter:
            raise ValueError("delimiter must not be empty")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"unknown aggregation {self.aggregation!r}; choose one of {sorted(AGGREGATIONS)}")
        if self.allocation not in ALLOCATIONS:
            raise ValueError(f"unknown allocation {self.allocation!r}; choose one of {list(ALLOCATIONS)}")
        if self.selection not in SELECTIONS:
            raise ValueError(f"unknown selection {self.selection!r}; choose one of {list(SELECTIONS)}")
        check_stop(self.stop, self.confidence, self.wave)
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of {list(SCHEDULES)}")

    @classmethod
    def make(cls, method: str, n: int, seed: int, **options) -> SearchConfig:
        """Build from `search()` keyword options, naming any option that does not exist."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown search option(s) {unknown}; known: {sorted(known - set(PER_RUN))}")
        return cls(method=method, n=n, seed=seed, **options)

    @property
    def beams(self) -> int:
        return min(self.n, self.beam_width or max(1, self.n // self.expansions))

    @property
    def particles(self) -> int:
        """Particles per particle filter run (per particle Gibbs iteration)."""
        return self.n // self.iterations

    @property
    def mcts_simulations(self) -> int:
        return self.simulations or 4 * self.n
