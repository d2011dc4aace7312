"""`search`, `search_batch` and `search_iter`: run a strategy per problem, every problem's frontier batched together."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Sequence

from tdrm_search.aggregate import aggregate, answer_key, select
from tdrm_search.config import SearchConfig
from tdrm_search.expansion import Expander, Job
from tdrm_search.policies.base import Policy
from tdrm_search.prms.base import PRM
from tdrm_search.stopping import consensus
from tdrm_search.strategies import STRATEGIES
from tdrm_search.tree import Tree
from tdrm_search.types import STAT_KEYS, Problem, Progress, Round, SearchResult, Trajectory


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
        finish=node.terminal,  # type: ignore[arg-type]  # a leaf is terminal: never None here
        num_tokens=tree.generated_tokens(leaf),
        node=leaf,
    )


def solutions(tree: Tree, cfg: SearchConfig) -> tuple[list[Trajectory], Trajectory | None]:
    """Every finished solution of `tree` so far, and the one `cfg.selection` picks."""
    candidates = [trajectory(tree, leaf, cfg) for leaf in tree.leaves()]
    return candidates, select(candidates, cfg.selection)


def search_result(tree: Tree, cfg: SearchConfig, stats: Counter, wall_s: float) -> SearchResult:
    """A finished search as its SearchResult: the solutions, the chosen one, the counters and the tree itself."""
    candidates, best = solutions(tree, cfg)
    out: dict[str, float] = {key: stats.get(key, 0) for key in STAT_KEYS}
    out.update(
        wall_s=wall_s,
        nodes=len(tree.nodes),
        unique_tree_tokens=tree.unique_tokens(),
        samples=len(candidates),
        stopped_early=bool(stats["stopped_early"]),
    )
    return SearchResult(
        problem=tree.problem,
        answer=best.answer if best else None,
        best=best,
        candidates=candidates,
        tree=tree,
        stats=out,
        method=cfg.method,
    )


def search_iter(
    problems: Sequence[str | Problem],
    policy: Policy,
    prm: PRM,
    method: str = "beam",
    n: int = 16,
    seed: int = 0,
    **options,
) -> Iterator[Round]:
    """Search every problem with one method, yielding after each round every problem's current answer, its
    support and the tokens spent (anytime answers; break to stop early); the last round carries the results.

    Each round is one generate and one PRM call over every live problem's frontier. With `stop`, a problem whose
    answer settles after a round has its strategy closed: it drops out of the later rounds, leaving them to the
    others."""
    cfg = SearchConfig.make(method, n, seed, **options)
    if isinstance(problems, (str, Problem)):
        raise ValueError("search_iter and search_batch take a list of problems; use search() for one")
    trees = [new_tree(as_problem(p, i), policy, i) for i, p in enumerate(problems)]
    expander = Expander(policy, prm, cfg)
    if schedule_for(cfg.schedule, policy) == "async":
        from tdrm_search.async_driver import asynchronous  # each problem advances on its own (a server policy)

        return asynchronous(trees, expander)
    return lockstep(trees, expander)


def schedule_for(schedule: str, policy: Policy) -> str:
    """The driver a search runs: `auto` is async for a policy that takes requests asynchronously (a server, whose
    continuous batching mixes every problem's requests), else lockstep; the others are themselves."""
    if schedule != "auto":
        return schedule
    return "async" if hasattr(policy, "submit") else "lockstep"


def lockstep(trees: list[Tree], expander: Expander) -> Iterator[Round]:
    """The driver loop of `search_iter`: every problem's strategy in lockstep, each round one expansion of every
    live problem's requests."""
    cfg = expander.config
    stats: list[Counter[str]] = [Counter() for _ in trees]
    strategies = [STRATEGIES[cfg.method](tree, cfg) for tree in trees]
    started = time.perf_counter()
    pending = {i: next(s, None) for i, s in enumerate(strategies)}
    votes = [tally(tree, cfg) for tree in trees]

    def snapshot() -> list[Progress]:
        return [
            Progress(
                index=i,
                **votes[i],
                generated_tokens=stats[i]["generated_tokens"],
                finished=not pending.get(i),
                stopped_early=bool(stats[i]["stopped_early"]),
            )
            for i in range(len(trees))
        ]

    while pending := {i: asks for i, asks in pending.items() if asks}:
        jobs = [(i, Job(trees[i], ask, stats[i])) for i, asks in pending.items() for ask in asks]
        leaves = expander.expand([job for _, job in jobs])
        replies: dict[int, list] = {i: [] for i in pending}
        for (i, _), new in zip(jobs, leaves, strict=True):
            replies[i].append(new)
        pending = {i: send(strategies[i], replies[i]) for i in pending}
        for i, asks in pending.items():
            if any(trees[i].nodes[node].terminal for new in replies[i] for node in new):  # new finished solutions
                votes[i] = tally(trees[i], cfg)
            if asks and cfg.stop and votes[i]["confidence"] >= cfg.confidence:
                strategies[i].close()
                pending[i], stats[i]["stopped_early"] = None, 1
        if any(pending.values()):
            yield Round(expander.generate_calls, snapshot())
    wall_s = time.perf_counter() - started
    results = [search_result(tree, cfg, s, wall_s) for tree, s in zip(trees, stats, strict=True)]
    yield Round(expander.generate_calls, snapshot(), results)


def tally(tree: Tree, cfg: SearchConfig) -> dict:
    """The vote over a problem's finished solutions so far: the answer `search_result` would pick now, its support, the
    number of solutions, and the stopping rule's P(leading answer beats the runner-up)."""
    candidates, best = solutions(tree, cfg)
    answer = best.answer if best else None
    weights = [t.score for t in candidates] if cfg.stop == "weighted_consensus" else None
    return {
        "answer": answer,
        "support": sum(
            answer is not None and t.answer is not None and answer_key(t.answer) == answer_key(answer)
            for t in candidates
        ),
        "samples": len(candidates),
        "confidence": consensus([t.answer for t in candidates], weights).probability,
    }


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
    *_, last = search_iter(problems, policy, prm, method=method, n=n, seed=seed, **options)
    return last.results  # type: ignore[return-value]  # the last round always carries the results


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
