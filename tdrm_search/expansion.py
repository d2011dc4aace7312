"""The expansion step: the nodes every problem's strategy asked to expand go into one generate call, the new steps
into the trees, and every new step into one scoring call."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass

from tdrm_search.config import SearchConfig
from tdrm_search.ending import ending, final_answer
from tdrm_search.policies.base import GenerateOutput, Policy, Sample, SampleRequest
from tdrm_search.prms.base import PRM, ScoreRequest, check_scores
from tdrm_search.steps import split_steps
from tdrm_search.tree import Tree
from tdrm_search.types import Expand, Problem


@dataclass
class Job:
    tree: Tree
    expand: Expand
    stats: Counter  # the tree's counters, shared by all its jobs


def request_seed(seed: int, problem: Problem, round_: int, index: int) -> int:
    """The seed of a problem's `index`-th request in its `round_`-th round: from the run's seed and the problem (id
    and question) alone, never from the problems batched beside it, so a problem draws the same samples alone, in
    any chunk or on any replica (on backends that seed a request; vLLM on CPU seeds a whole call)."""
    key = f"{seed}\0{problem.id or ''}\0{problem.question}\0{round_}\0{index}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1


def per_tree(jobs) -> list[Counter]:
    """Each tree's stats once, however many of its nodes a round expands."""
    return list({id(job.stats): job.stats for job in jobs}.values())


class Expander:
    """Expands the nodes of many trees at once against one policy and one PRM: generate, split into steps, end
    finished paths, score."""

    def __init__(self, policy: Policy, prm: PRM, config: SearchConfig):
        self.policy, self.prm, self.config = policy, prm, config
        self.generate_calls = 0  # expansions run so far (one generate call each)

    def token_budget(self, tree: Tree, node: int, whole: bool) -> int:
        cfg = self.config
        left = min(cfg.max_tokens - tree.generated_tokens(node), self.policy.max_model_len - len(tree.prefix_ids(node)))
        return left if whole else min(left, cfg.max_step_tokens)

    def expand(self, jobs: list[Job]) -> list[list[int]]:
        """Expand every job's node; return, per job, the last new node of each sample (scored)."""
        requests = self.sample_requests(jobs)
        started = time.perf_counter()
        out = self.policy.generate(requests, seed=self.call_seed())
        leaves = self.add_samples(jobs, out, time.perf_counter() - started)
        self.score(jobs, leaves)
        return leaves

    def call_seed(self) -> int:
        """The seed of the next generate call (for requests without their own); counts the call."""
        self.generate_calls += 1
        return self.config.seed * 1_000_003 + self.generate_calls - 1

    def sample_requests(self, jobs: list[Job]) -> list[SampleRequest]:
        """One request per job: sample its node's children, seeded by its tree's round and its place in it."""
        cfg = self.config
        nth = Counter()  # a request's place among its tree's requests this round
        requests = []
        for job in jobs:
            requests.append(
                SampleRequest(
                    prefix=job.tree.prefix_ids(job.expand.node),
                    n=job.expand.k,
                    max_tokens=self.token_budget(job.tree, job.expand.node, job.expand.whole),
                    temperature=0.0 if job.expand.greedy else cfg.temperature,
                    top_p=cfg.top_p,
                    stop=None if job.expand.whole else cfg.delimiter,
                    seed=request_seed(cfg.seed, job.tree.problem, job.stats["generate_calls"], nth[id(job.tree)]),
                )
            )
            nth[id(job.tree)] += 1
        return requests

    def add_samples(self, jobs: list[Job], out: GenerateOutput, generate_s: float) -> list[list[int]]:
        """Add the generated samples to the trees (not yet scored); per job, the last new node of each sample."""
        leaves = []
        for job, samples, prompt, cached in zip(
            jobs, out.samples, out.prompt_tokens, out.cached_prompt_tokens, strict=True
        ):
            job.stats.update(prompt_tokens=prompt, cached_prompt_tokens=cached)
            leaves.append([self.add_sample(job, sample) for sample in samples])
        for stats in per_tree(jobs):
            stats.update(generate_calls=1, generate_s=generate_s)
        return leaves

    def add_sample(self, job: Job, sample: Sample) -> int:
        """Add a sample's steps under the job's node, stopping at the first terminal one."""
        tree, node = job.tree, job.expand.node
        job.stats["generated_tokens"] += len(sample.token_ids)
        pieces = split_steps(sample.token_ids, self.policy.decode, self.config.delimiter) or [[]]
        for i, ids in enumerate(pieces):
            node = tree.add(node, ids, self.policy.decode(ids))
            last = i == len(pieces) - 1
            self.end_if_finished(tree, node, sample.finish if last else "stop")
            if tree.nodes[node].terminal:
                break
        return node

    def end_if_finished(self, tree: Tree, node: int, finish: str) -> None:
        n = tree.nodes[node]
        kind = ending(n.text, finish, self.token_budget(tree, node, whole=True), n.depth, self.config.max_steps)
        if kind:
            tree.end(node, kind, final_answer(n.text, "".join(tree.steps(node))))

    def score(self, jobs: list[Job], leaves: list[list[int]]) -> None:
        """One PRM call for every new step; values already known are never recomputed, and identical
        new paths (siblings that sampled the same text) are scored once."""
        items = []
        for job, nodes in zip(jobs, leaves, strict=True):
            for leaf in nodes:
                path = job.tree.path(leaf)
                start = next(i for i, nid in enumerate(path) if job.tree.nodes[nid].value is None)
                steps = tuple(job.tree.nodes[nid].text for nid in path)
                items.append((job, path, start, (id(job.tree), steps, start)))
        distinct = {key: job for job, _, _, key in items}
        if not distinct:
            return
        requests = [ScoreRequest(job.tree.problem, steps, start) for (_, steps, start), job in distinct.items()]
        started = time.perf_counter()
        out = self.prm.score(requests)
        score_s = time.perf_counter() - started
        check_scores(requests, out)
        scored = dict(zip(distinct, out.scores, strict=True))
        generated = out.generated_tokens or [0] * len(requests)
        for job, tokens, cached, wrote in zip(distinct.values(), out.tokens, out.cached_tokens, generated, strict=True):
            job.stats.update(prm_tokens=tokens, prm_cached_tokens=cached, prm_generated_tokens=wrote)
        for job, path, start, key in items:
            for nid, value in zip(path[start:], scored[key], strict=True):
                job.tree.set_value(nid, value)
        for stats in per_tree(job for job, *_ in items):
            stats.update(prm_calls=1, score_s=score_s)
