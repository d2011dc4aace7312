"""What to draw of a search tree, for any renderer (`tree_view` draws it): positions from `tidy_layout` (depth
across, leaves down), each node's PRM value, whether it is on the chosen path, its final answer graded against the
reference, its hover text and its label, all as plain data.
"""

from __future__ import annotations

import html
import textwrap
from dataclasses import dataclass

import networkx as nx

from tdrm_search.grading import GradingTimeout, check_equivalent
from tdrm_search.tree import ROOT, Node, Tree
from tdrm_search.types import SearchResult

GRADE_TIMEOUT_S = 10.0
LABEL_CHARS = 36  # the chosen path's step labels are shortened to this


@dataclass(frozen=True)
class DrawnNode:
    id: int
    x: float  # depth
    y: float  # leaf order (0 at the top)
    value: float | None  # PRM value (None: the question, or a step never scored)
    chosen: bool  # on the path to the chosen answer
    correct: bool | None  # a final answer graded against the reference (None: not final, or no reference)
    hover: str  # the step's text and facts, as plotly hover HTML
    label: str  # the step's text shortened, shown beside the nodes of the chosen path ("" elsewhere)


@dataclass(frozen=True)
class Drawing:
    title: str  # the method, answer and reference
    question: str
    nodes: list[DrawnNode]
    edges: list[tuple[int, int]]
    chosen_edges: list[tuple[int, int]]


def tidy_layout(graph: nx.DiGraph, root: int = ROOT) -> dict[int, tuple[float, float]]:
    """(x, y) of every node under `root`: x its depth, leaves at y = 0, 1, 2... in depth-first order (children in
    the graph's order), each parent centred between its first and last child."""
    pos: dict[int, tuple[float, float]] = {}
    depth = nx.single_source_shortest_path_length(graph, root)
    leaves = 0
    for node in nx.dfs_postorder_nodes(graph, root):
        children = list(graph.successors(node))
        if children:
            y = (pos[children[0]][1] + pos[children[-1]][1]) / 2
        else:
            y, leaves = float(leaves), leaves + 1
        pos[node] = (float(depth[node]), y)
    return pos


def grade_answers(tree: Tree, gold: str | None) -> dict[int, bool | None]:
    """Each final node's answer against `gold` (a path that ended without an answer is wrong); None where there is
    no reference or the comparison timed out. Each distinct answer is graded once."""
    finals = tree.leaves()
    if gold is None:
        return dict.fromkeys(finals)
    right: dict[str | None, bool | None] = {None: False}
    for node in finals:
        answer = tree.nodes[node].answer
        if answer not in right:
            try:
                right[answer] = check_equivalent(answer, gold, GRADE_TIMEOUT_S)
            except GradingTimeout:
                right[answer] = None
    return {node: right[tree.nodes[node].answer] for node in finals}


def _hover(text: str, width: int = 80) -> str:
    lines = [line for para in text.strip().splitlines() for line in textwrap.wrap(para, width) or [""]]
    return "<br>".join(html.escape(line) for line in lines)


def _node_hover(node: Node, correct: bool | None, question: str) -> str:
    if node.depth == 0:
        return "<b>question</b><br>" + _hover(question)
    value = "not scored" if node.value is None else f"{node.value:.3f}"
    visits = f", {node.visits} visits" if node.visits else ""
    facts = [f"<b>step {node.depth}</b>  PRM value {value}  ({len(node.token_ids)} tokens{visits})"]
    if node.terminal is not None:
        verdict = "" if correct is None else "  right" if correct else "  wrong"
        facts.append(f"<b>final</b> ({node.terminal}): answer {html.escape(str(node.answer))}{verdict}")
    return "<br>".join(facts) + "<br>" + _hover(node.text)


def drawing(result: SearchResult) -> Drawing:
    """What to draw of `result`'s tree, for any renderer."""
    tree = result.tree
    graph = tree.to_networkx()
    pos = tidy_layout(graph)
    chosen = {ROOT, *tree.path(result.best.node)} if result.best is not None else set()
    correct = grade_answers(tree, result.problem.answer)
    nodes = [
        DrawnNode(
            id=i,
            x=pos[i][0],
            y=pos[i][1],
            value=node.value,
            chosen=i in chosen,
            correct=correct.get(i),
            hover=_node_hover(node, correct.get(i), result.problem.question),
            label=textwrap.shorten(node.text, LABEL_CHARS, placeholder="...") if i in chosen else "",
        )
        for i, node in enumerate(tree.nodes)
    ]
    gold = "" if result.problem.answer is None else f", reference {result.problem.answer}"
    return Drawing(
        title=f"{result.method}, {len(result.candidates)} solution(s): answer {result.answer}{gold}",
        question=result.problem.question,
        nodes=nodes,
        edges=list(graph.edges),
        chosen_edges=[(u, v) for u, v in graph.edges if u in chosen and v in chosen],
    )
