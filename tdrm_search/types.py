"""Plain data passed between the engine's parts: problems, a strategy's requests, trajectories, results."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tdrm_search.tree import Tree


@dataclass(frozen=True)
class Problem:
    """A question, its reference answer when known, and free-form metadata (level, subject...)."""

    question: str
    answer: str | None = None
    id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (one JSONL row)."""
        return {"id": self.id, "question": self.question, "answer": self.answer, "meta": self.meta}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Problem:
        """The inverse of `to_dict`."""
        return cls(question=d["question"], answer=d.get("answer"), id=d.get("id"), meta=dict(d.get("meta") or {}))


FINISH_KINDS = ("eos", "answer", "length", "max_steps")  # why a path ends (see `tdrm_search.ending`)
STAT_KEYS = (  # the counters every SearchResult reports
    "generated_tokens",
    "prompt_tokens",
    "cached_prompt_tokens",
    "prm_tokens",
    "prm_cached_tokens",
    "prm_generated_tokens",
    "generate_calls",
    "prm_calls",
    "generate_s",
    "score_s",
)


@dataclass(frozen=True)
class Expand:
    """A strategy's request: `k` children of `node`, one step each, or whole solutions split into steps."""

    node: int
    k: int
    whole: bool = False
    greedy: bool = False


# A strategy is a generator over one problem's tree: it yields the expansions it wants and receives, for each,
# the last new node of every sample (scored); it returns when its budget is spent.
Strategy = Generator[list[Expand], list[list[int]], None]


@dataclass
class Trajectory:
    """One complete (or abandoned) solution: its steps and the PRM value after each step."""

    steps: list[str]
    step_scores: list[float]
    score: float
    answer: str | None
    finish: str  # one of FINISH_KINDS
    num_tokens: int
    node: int  # id of its last node in the search tree

    @property
    def text(self) -> str:
        return "".join(self.steps)


@dataclass(frozen=True)
class Progress:
    """One problem after a search round: the answer the search would give now and what it has spent."""

    index: int  # the problem's place in the batch
    answer: str | None  # what `selection` picks among the finished solutions so far (None: none finished yet)
    support: int  # finished solutions that give that answer
    samples: int  # finished solutions
    generated_tokens: int
    confidence: float  # the stopping rule's P(leading answer beats the runner-up) over the finished solutions
    finished: bool  # its budget is spent or its answer settled
    stopped_early: bool  # its answer settled before its budget was spent


@dataclass
class SearchResult:
    """What `search` returns for one problem."""

    problem: Problem
    answer: str | None
    best: Trajectory | None
    candidates: list[Trajectory]
    tree: Tree  # the search tree itself (plain data); `tree.to_networkx()` for a graph
    stats: dict[str, float]
    method: str

    @property
    def correct(self) -> bool | None:
        """Whether the chosen answer matches the reference (None when the problem has no reference)."""
        if self.problem.answer is None:
            return None
        from tdrm_search.grading import is_equivalent

        return self.answer is not None and is_equivalent(self.answer, self.problem.answer)


@dataclass
class Round:
    """What `search_iter` yields after each round: every problem's progress; on the last round, the results."""

    index: int  # rounds run so far (0: none ran)
    progress: list[Progress]
    results: list[SearchResult] | None = None
