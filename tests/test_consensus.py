"""Consensus stopping and anytime answers in the engine, on the lab policy (both backends) with the exact checker."""

from __future__ import annotations

from itertools import pairwise

import pytest

from tdrm_search import search_batch, search_iter
from tdrm_search.aggregate import answer_key
from tdrm_search.prms.oracle import OraclePRM
from tdrm_search.stopping import should_stop
from tdrm_search.tasks.lab import generate_problems

BACKENDS = ["hf", pytest.param("vllm", marks=pytest.mark.vllm)]


@pytest.fixture(params=BACKENDS)
def policy(request):
    return request.getfixturevalue(f"{request.param}_lab_policy")


@pytest.fixture(scope="module")
def problems():
    return generate_problems(8, seed=5)


class Requests:
    """Wraps a real policy and records how many requests each generate call carried."""

    def __init__(self, policy):
        self.policy, self.calls = policy, []

    def __getattr__(self, name):
        return getattr(self.policy, name)

    def generate(self, requests, seed):
        self.calls.append(len(requests))
        return self.policy.generate(requests, seed)


def test_best_of_n_samples_in_waves_until_the_answer_settles(policy, problems):
    plain = search_batch(problems, policy, OraclePRM(), method="best_of_n", n=16, seed=0)
    assert all(r.stats["generate_calls"] == 1 and r.stats["samples"] == 16 for r in plain)  # no stop: one call
    assert not any(r.stats["stopped_early"] for r in plain)
    recording = Requests(policy)
    results = search_batch(problems, recording, OraclePRM(), method="best_of_n", n=16, seed=0, stop="consensus")
    stopped = [r.stats["stopped_early"] for r in results]
    assert any(stopped) and not all(stopped), stopped  # the problems below both settle and stay open
    for r in results:
        answers, samples = [t.answer for t in r.candidates], r.stats["samples"]
        assert samples == len(answers) and samples % 4 == 0 and r.stats["stopped_early"] == (samples < 16)
        assert not any(should_stop(answers[:k]) for k in range(4, samples, 4))  # no earlier wave had settled
        assert should_stop(answers) or not r.stats["stopped_early"]
        assert r.stats["generated_tokens"] == sum(t.num_tokens for t in r.candidates)
    # a settled problem leaves the batch: each call carries one request per problem still sampling
    assert recording.calls == [sum(r.stats["samples"] > 4 * i for r in results) for i in range(len(recording.calls))]
    assert sum(r.stats["generated_tokens"] for r in results) < sum(r.stats["generated_tokens"] for r in plain)


def test_weighted_consensus_with_the_checker_only_settles_on_right_answers(hf_lab_policy, problems):
    # the checker scores a wrong solution 0, so only four right ones can outweigh everything else
    results = search_batch(
        problems, hf_lab_policy, OraclePRM(), method="best_of_n", n=16, seed=1, stop="weighted_consensus"
    )
    assert any(r.stats["stopped_early"] for r in results)
    assert all(r.correct for r in results if r.stats["stopped_early"])


@pytest.mark.parametrize("method", ["beam", "dvts", "mcts", "particle_filter"])
def test_tree_methods_stop_on_their_finished_leaves(hf_lab_policy, problems, method):
    options = {"children": 2, "parallel": 2} if method == "mcts" else {}
    results = search_batch(
        problems[:4], hf_lab_policy, OraclePRM(), method=method, n=8, stop="consensus", confidence=0.85, **options
    )
    for r in results:
        assert 1 <= r.stats["samples"] == len(r.candidates) <= 8
        assert not r.stats["stopped_early"] or should_stop([t.answer for t in r.candidates], 0.85)
    if method == "mcts":  # its solutions finish a few at a time, so two agreeing ones settle a problem early
        assert any(r.stats["stopped_early"] for r in results)


def test_search_iter_gives_anytime_answers_and_the_same_results(policy, problems):
    rounds = list(search_iter(problems[:3], policy, OraclePRM(), method="beam", n=8, beam_width=2, seed=2))
    assert [r.index for r in rounds] == list(range(1, len(rounds) + 1)) and len(rounds) > 1
    assert all(r.results is None for r in rounds[:-1])
    results = rounds[-1].results
    for i, result in enumerate(results):
        steps = [r.progress[i] for r in rounds]
        assert all(a.generated_tokens <= b.generated_tokens and a.samples <= b.samples for a, b in pairwise(steps))
        last = steps[-1]
        assert last.finished and last.answer == result.answer and last.samples == len(result.candidates)
        assert last.generated_tokens == result.stats["generated_tokens"]
        assert last.support == sum(
            t.answer is not None and answer_key(t.answer) == answer_key(result.answer) for t in result.candidates
        )
    again = search_batch(problems[:3], policy, OraclePRM(), method="beam", n=8, beam_width=2, seed=2)
    assert [r.answer for r in again] == [r.answer for r in results]


def test_search_iter_can_be_left_after_a_round(policy, problems):
    rounds = search_iter(problems, policy, OraclePRM(), method="best_of_n", n=64, stop="consensus")
    first = next(rounds)
    rounds.close()  # the caller has its answers: no further round runs
    assert first.index == 1 and first.results is None
    for p in first.progress:
        assert p.samples == 4 and p.support <= 4 and p.generated_tokens > 0
        assert p.finished == p.stopped_early == (p.support == 4) == (p.confidence >= 0.95)  # four alike settle
