"""The asynchronous driver of `search_iter` (`schedule="async"`): each problem's strategy advances as soon as its own
requests are done, instead of every problem waiting for the slowest step of a lockstep round.

Each problem's expansion (the requests its strategy asked for) goes to the policy at once (`policy.submit`, a
server policy: `policies/remote.py`), bounded there by the client's `max_concurrency` requests in flight; the
server's continuous batching mixes every problem's requests. Whenever requests come back, the driver adds the
samples of every problem that is back to its tree (waiting up to GATHER_S for a share of those in flight, so a PRM
call scores several problems), scores them in one PRM call, sends them to the strategies and
submits their next requests; the strategies are the lockstep driver's, unchanged.

Reproducibility: a request's seed comes from the run's seed, its problem, the problem's own round and its place in
it (`expansion.request_seed`), never from the order requests come back, so on a server that honours per-request
seeds (vLLM's OpenAI server does, on the CPU too) a problem draws the same samples under either schedule and in any
batch, and the async search returns what the lockstep one does. What varies from run to run: the order of PRM
calls (a PRM whose values depend on what it is batched with, by float rounding, may break a tie differently), the
rounds `search_iter` yields (one per batch of problems that came back together) and the timings.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, wait

from tdrm_search.expansion import Expander, Job
from tdrm_search.strategies import STRATEGIES
from tdrm_search.tree import Tree
from tdrm_search.types import Progress, Round

GATHER_SHARE = 0.25  # a PRM call waits for this share of the problems in flight to come back ...
GATHER_S = 0.1  # ... or this many seconds after the first one did, whichever is sooner


def gather_back(flight: dict) -> set:
    """The futures done: at least one, and more while they come back within GATHER_S of the first, up to
    GATHER_SHARE of those in flight, so one PRM call scores several problems' steps (a call has a fixed cost)."""
    done, pending = wait(list(flight), return_when=FIRST_COMPLETED)
    want = max(1, math.ceil(GATHER_SHARE * len(flight)))
    deadline = time.perf_counter() + GATHER_S
    while pending and len(done) < want and (left := deadline - time.perf_counter()) > 0:
        more, pending = wait(pending, timeout=left, return_when=FIRST_COMPLETED)
        done |= more
    return done


def asynchronous(trees: list[Tree], expander: Expander) -> Iterator[Round]:
    """The async driver loop: yields after each batch of problems whose requests came back; the last round carries
    the results."""
    from tdrm_search.engine import search_result, send, tally

    cfg, policy = expander.config, expander.policy
    if not hasattr(policy, "submit"):
        raise ValueError(
            f"schedule 'async' needs a policy that takes requests asynchronously (a server: --policy "
            f"http://HOST:PORT/v1); {type(policy).__name__} runs lockstep rounds only"
        )
    stats = [Counter() for _ in trees]
    strategies = [STRATEGIES[cfg.method](tree, cfg) for tree in trees]
    started = time.perf_counter()
    asks = {i: next(s, None) for i, s in enumerate(strategies)}
    votes = [tally(tree, cfg) for tree in trees]
    flight: dict = {}  # future -> (problem, its jobs, submit time)

    def launch(i: int) -> None:
        jobs = [Job(trees[i], ask, stats[i]) for ask in asks[i]]
        future = policy.submit(expander.sample_requests(jobs), expander.call_seed())
        flight[future] = (i, jobs, time.perf_counter())

    def snapshot() -> list[Progress]:
        return [
            Progress(
                index=i,
                **votes[i],
                generated_tokens=stats[i]["generated_tokens"],
                finished=not asks.get(i),
                stopped_early=bool(stats[i]["stopped_early"]),
            )
            for i in range(len(trees))
        ]

    try:
        for i, ask in asks.items():
            if ask:
                launch(i)
        while flight:
            done = gather_back(flight)
            back = [(flight.pop(future), future.result()) for future in done]
            now = time.perf_counter()
            jobs, leaves, per_problem = [], [], []
            for (i, problem_jobs, submitted), out in back:
                new = expander.add_samples(problem_jobs, out, now - submitted)
                jobs += problem_jobs
                leaves += new
                per_problem.append((i, new))
            expander.score(jobs, leaves)  # one PRM call for every problem that came back
            for i, new in per_problem:
                asks[i] = send(strategies[i], new)
                if any(trees[i].nodes[node].terminal for nodes in new for node in nodes):
                    votes[i] = tally(trees[i], cfg)
                if asks[i] and cfg.stop and votes[i]["confidence"] >= cfg.confidence:
                    strategies[i].close()
                    asks[i], stats[i]["stopped_early"] = None, 1
                if asks[i]:
                    launch(i)
            if flight:
                yield Round(expander.generate_calls, snapshot())
    finally:  # an error, or the caller stopped iterating: nothing left running on the server
        for future in flight:
            future.cancel()
    wall_s = time.perf_counter() - started
    results = [search_result(tree, cfg, s, wall_s) for tree, s in zip(trees, stats, strict=True)]
    yield Round(expander.generate_calls, snapshot(), results)
