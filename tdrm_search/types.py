"""Plain data passed between the engine's parts: problems, trajectories, results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import networkx as nx


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


@dataclass
class Trajectory:
    """One complete (or abandoned) solution: its steps and the PRM value after each step."""

    steps: list[str]
    step_scores: list[float]
    score: float
    answer: str | None
    finish: str  # "eos", "answer", "length" or "max_steps"
    num_tokens: int
    node: int  # id of its last node in the search tree

    @property
    def text(self) -> str:
        return "".join(self.steps)


@dataclass
class SearchResult:
    """What `search` returns for one problem."""

    problem: Problem
    answer: str | None
    best: Trajectory | None
    candidates: list[Trajectory]
    tree: nx.DiGraph
    stats: dict[str, float]
    method: str

    @property
    def correct(self) -> bool | None:
        """Whether the chosen answer matches the reference (None when the problem has no reference)."""
        if self.problem.answer is None:
            return None
        from tdrm_search.grading import is_equivalent

        return self.answer is not None and is_equivalent(self.answer, self.problem.answer)
