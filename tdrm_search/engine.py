"""`search` and `search_batch`: run a strategy per problem, every problem's frontier batched together."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence

from tdrm_search.aggregate import aggregate, select
from tdrm_search.config import SearchConfig
from tdrm_search.policies.base import Policy
from tdrm_search.prms.base import PRM
from tdrm_search.scheduler import Job, Scheduler
from tdrm_search.strategies import STRATEGIES
from tdrm_search.tree import Tree
from tdrm_search.types import STAT_KEYS, Problem, SearchResult, Trajectory


def as_problem(problem: str | Problem, index: int = 0) -> Problem:
    if isinstance(problem, str):
        problem = Problem(question=problem)
    if not isinstance(problem, Problem):
        raise ValueError(f"problem {index} must be a str or a Problem, got {type(problem).__name__}")
    if not problem.question or not problem.question.strip():
        raise ValueError(f"problem {index} ({problem.id or 'no id'}) has an empty question")
    return problem


def new_tree(problem: Problem, policy: Policy, index: int) -> Tree:
    prompt = policy.encode_prompt(problem.question)
    if len(prompt) >= policy.max_model_len:
        raise ValueError(
            f"problem {index} ({problem.id or problem.question[:40]!r}) is {len(prompt)} prompt tokens, "
            f"which does not fit the model context of {policy.max_model_len}"
        )
    return Tree.new(problem, prompt)


def trajectory(tree: Tree, leaf: int, cfg: SearchConfig) -> Trajectory:
    node = tree.nodes[leaf]
    scores = tree.step_values(leaf)
    return Trajectory(
        steps=tree.steps(leaf),
        step_scores=scores,
        score=aggregate(scores, cfg.aggregation),
        answer=node.answer,
        finish=node.terminal,
        num_tokens=tree.generated_tokens(leaf),
        node=leaf,
    )


def finish(tree: Tree, cfg: SearchConfig, stats: Counter, wall_s: float) -> SearchResult:
    candidates = [trajectory(tree, leaf, cfg) for leaf in tree.leaves()]
    best = select(candidates, cfg.selection)
    out = {key: stats.get(key, 0) for key in STAT_KEYS}
    out.update(wall_s=wall_s, nodes=len(tree.nodes), unique_tree_tokens=tree.unique_tokens())
    return SearchResult(
        problem=tree.problem,
        answer=best.answer if best else None,
        best=best,
        candidates=candidates,
        tree=tree.to_networkx(),
        stats=out,
        method=cfg.method,
    )


def search_batch(
    problems: Sequence[str | Problem],
    policy: Policy,
    prm: PRM,
    method: str = "beam",
    n: int = 16,
    seed: int = 0,
    **options,
) -> list[SearchResult]:
    """Search every problem with one method; each expansion round is one generate and one PRM call."""
    cfg = SearchConfig.make(method, n, seed, **options)
    if isinstance(problems, (str, Problem)):
        raise ValueError("search_batch takes a list of problems; use search() for one")
    trees = [new_tree(as_problem(p, i), policy, i) for i, p in enumerate(problems)]
    stats = [Counter() for _ in trees]
    strategies = [STRATEGIES[cfg.method](tree, cfg) for tree in trees]
    scheduler = Scheduler(policy, prm, cfg)
    started = time.perf_counter()
    pending = {i: next(s, None) for i, s in enumerate(strategies)}
    while pending := {i: asks for i, asks in pending.items() if asks}:
        jobs = [(i, Job(trees[i], ask, stats[i])) for i, asks in pending.items() for ask in asks]
        leaves = scheduler.run([job for _, job in jobs])
        replies: dict[int, list] = {i: [] for i in pending}
        for (i, _), new in zip(jobs, leaves, strict=True):
            replies[i].append(new)
        pending = {i: send(strategies[i], replies[i]) for i in pending}
    wall_s = time.perf_counter() - started
    return [finish(tree, cfg, s, wall_s) for tree, s in zip(trees, stats, strict=True)]


def send(strategy, reply):
    """The strategy's next request, or None once it has returned."""
    try:
        return strategy.send(reply)
    except StopIteration:
        return None


def search(
    problem: str | Problem, policy: Policy, prm: PRM, method: str = "beam", n: int = 16, seed: int = 0, **options
) -> SearchResult:
    """Search one problem. See `SearchConfig` for the method options."""
    return search_batch([problem], policy, prm, method=method, n=n, seed=seed, **options)[0]
