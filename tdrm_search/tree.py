"""The search tree: one node per step, each holding its token ids, text and PRM value.

As in mctx, every node keeps its value explicitly (`value`: the PRM's V(s) of the prefix ending at that
step) next to search statistics (`visits`, `value_sum`), so a finished tree is a set of scored transitions
that `prm_train` can turn into TD targets directly. Only the tree's own methods write it: `add`, `set_value`,
`end` and `backup`. A tree is plain data (picklable: it crosses processes and Ray replicas as is); `to_networkx` is
the one place it becomes a graph, for drawing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tdrm_search.types import FINISH_KINDS, Problem

if TYPE_CHECKING:
    import networkx as nx

ROOT = 0


@dataclass
class Node:
    parent: int | None
    token_ids: list[int]  # the ids this step added (the prompt for the root)
    text: str
    depth: int  # number of steps from the root
    value: float | None = None  # PRM value of the prefix ending here (None until scored; root: None)
    terminal: str | None = None  # why the path ends here: one of FINISH_KINDS
    answer: str | None = None
    children: list[int] = field(default_factory=list)
    visits: int = 0
    value_sum: float = 0.0


@dataclass
class Tree:
    problem: Problem
    nodes: list[Node]

    @classmethod
    def new(cls, problem: Problem, prompt_ids: list[int]) -> Tree:
        return cls(problem, [Node(parent=None, token_ids=list(prompt_ids), text="", depth=0)])

    def add(self, parent: int, token_ids: list[int], text: str) -> int:
        node = Node(parent=parent, token_ids=token_ids, text=text, depth=self.nodes[parent].depth + 1)
        self.nodes.append(node)
        self.nodes[parent].children.append(len(self.nodes) - 1)
        return len(self.nodes) - 1

    def set_value(self, node: int, value: float) -> None:
        """The PRM's value of the prefix ending at `node`."""
        self.nodes[node].value = float(value)

    def end(self, node: int, terminal: str, answer: str | None) -> None:
        """End the path at `node`, for reason `terminal`, with the answer it gives."""
        if terminal not in FINISH_KINDS:
            raise ValueError(f"unknown finish kind {terminal!r}; one of {FINISH_KINDS}")
        self.nodes[node].terminal, self.nodes[node].answer = terminal, answer

    def backup(self, path: list[int], value: float, visits: int = 1) -> None:
        """Add `visits` visits worth `value` to every node of `path` (negative visits take back a virtual loss)."""
        for node in path:
            self.nodes[node].visits += visits
            self.nodes[node].value_sum += value

    def step_key(self, node: int) -> tuple[int | None, tuple[int, ...]]:
        """Siblings with the same key are copies of one step (same parent, same tokens)."""
        return self.nodes[node].parent, tuple(self.nodes[node].token_ids)

    def path(self, node: int) -> list[int]:
        """Node ids from the first step to `node` (the root excluded)."""
        out = []
        while node != ROOT:
            out.append(node)
            node = self.nodes[node].parent
        return out[::-1]

    def steps(self, node: int) -> list[str]:
        return [self.nodes[i].text for i in self.path(node)]

    def step_values(self, node: int) -> list[float]:
        return [self.nodes[i].value for i in self.path(node)]

    def prefix_ids(self, node: int) -> tuple[int, ...]:
        """Prompt ids plus every step's ids down to `node`: the exact ids the policy saw."""
        ids = list(self.nodes[ROOT].token_ids)
        for i in self.path(node):
            ids.extend(self.nodes[i].token_ids)
        return tuple(ids)

    def generated_tokens(self, node: int) -> int:
        return sum(len(self.nodes[i].token_ids) for i in self.path(node))

    def leaves(self) -> list[int]:
        return [i for i, n in enumerate(self.nodes) if n.terminal is not None]

    def unique_tokens(self) -> int:
        """Distinct tokens of the tree: the prompt once plus every step once."""
        return sum(len(n.token_ids) for n in self.nodes)

    def to_networkx(self) -> nx.DiGraph:
        """The tree as a networkx graph (for drawing): one node per step with its fields as attributes."""
        import networkx as nx

        graph = nx.DiGraph()
        for i, n in enumerate(self.nodes):
            graph.add_node(
                i,
                text=n.text,
                token_ids=list(n.token_ids),
                num_tokens=len(n.token_ids),
                value=n.value,
                depth=n.depth,
                terminal=n.terminal,
                answer=n.answer,
                visits=n.visits,
            )
            if n.parent is not None:
                graph.add_edge(n.parent, i)
        return graph


def distinct_paths(tree: Tree) -> set[tuple[str, ...]]:
    """The step texts from the root to every node, each distinct path once (siblings that sampled the same text are
    one path, and the engine scores them once)."""
    texts: dict[int, tuple[str, ...]] = {ROOT: ()}
    for i, n in enumerate(tree.nodes):  # a parent is always added before its children
        if n.parent is not None:
            texts[i] = texts[n.parent] + (n.text,)
    return {path for node, path in texts.items() if node != ROOT}
