"""Rollouts: one sampled solution split into steps, with its outcome and optional step labels; JSONL I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tdrm_search.types import Problem


@dataclass
class Rollout:
    """A solution of `problem` as steps a_1..a_T.

    outcome: whether the final answer is correct (the terminal reward).
    labels: the task's exact per-step labels (True while every step so far is right), when it has a checker.
    mc_success: per step t < T, successful completions out of `mc_samples` sampled from the prefix s_t.
    tree, nodes: for a rollout cut from a search tree, the tree's index in its collection and each step's node id
        there (rollouts of one tree share the nodes of their common prefix), so targets can read the tree.
    values: each step's PRM value when the tree was searched.
    """

    problem: Problem
    steps: list[str]
    step_tokens: list[int]
    outcome: bool
    finish: str = "eos"
    labels: list[bool] | None = None
    mc_success: list[int] | None = None
    mc_samples: int = 0
    tree: int | None = None
    nodes: list[int] | None = None
    values: list[float] | None = None

    def __post_init__(self) -> None:
        self.validate()

    @property
    def name(self) -> str:
        return self.problem.id or self.problem.question[:40]

    def validate(self) -> None:
        """Raise ValueError naming the rollout when a field is missing, mis-sized or out of range."""
        T = len(self.steps)
        if T == 0:
            raise ValueError(f"rollout of {self.name!r} has no steps")
        if len(self.step_tokens) != T:
            raise ValueError(f"rollout of {self.name!r}: {len(self.step_tokens)} token counts for {T} steps")
        if self.labels is not None and len(self.labels) != T:
            raise ValueError(f"rollout of {self.name!r}: {len(self.labels)} labels for {T} steps")
        for name in ("nodes", "values"):
            got = getattr(self, name)
            if got is not None and len(got) != T:
                raise ValueError(f"rollout of {self.name!r}: {len(got)} {name} for {T} steps")
        if (self.tree is None) != (self.nodes is None):
            raise ValueError(f"rollout of {self.name!r}: a tree index needs node ids and node ids a tree index")
        if self.mc_success is not None:
            if len(self.mc_success) != T - 1:
                raise ValueError(
                    f"rollout of {self.name!r}: {len(self.mc_success)} MC counts for {T - 1} non-terminal steps"
                )
            if self.mc_samples < 1 or any(not 0 <= c <= self.mc_samples for c in self.mc_success):
                raise ValueError(
                    f"rollout of {self.name!r}: MC counts {self.mc_success} out of range [0, {self.mc_samples}]"
                )

    def to_dict(self) -> dict[str, Any]:
        return {
            "problem": self.problem.to_dict(),
            "steps": self.steps,
            "step_tokens": self.step_tokens,
            "outcome": self.outcome,
            "finish": self.finish,
            "labels": self.labels,
            "mc_success": self.mc_success,
            "mc_samples": self.mc_samples,
            "tree": self.tree,
            "nodes": self.nodes,
            "values": self.values,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Rollout:
        return cls(
            problem=Problem.from_dict(d["problem"]),
            steps=list(d["steps"]),
            step_tokens=list(d["step_tokens"]),
            outcome=bool(d["outcome"]),
            finish=d.get("finish", "eos"),
            labels=d.get("labels"),
            mc_success=d.get("mc_success"),
            mc_samples=d.get("mc_samples", 0),
            tree=d.get("tree"),
            nodes=d.get("nodes"),
            values=d.get("values"),
        )


def write_rollouts(path: str | Path, rollouts: Iterable[Rollout]) -> int:
    n = 0
    with open(path, "wb") as f:
        for r in rollouts:
            f.write(orjson.dumps(r.to_dict()) + b"\n")
            n += 1
    return n


def read_rollouts(path: str | Path) -> list[Rollout]:
    """Every rollout of a JSONL file; a malformed line raises ValueError with its line number."""
    out = []
    with open(path, "rb") as f:
        for i, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                out.append(Rollout.from_dict(orjson.loads(line)))
            except (ValueError, KeyError, TypeError) as err:
                raise ValueError(f"{path}:{i}: {err}") from err
    return out
