"""The baselines score with every head: the one-call-per-node scorer on vLLM (each path re-encoded and read whole,
one sequence per call, nothing read from the prefix cache) and the TDRM-style full-sequence scorer on transformers
give the engine's own values."""

from __future__ import annotations

import pytest
from test_prms import PROBLEM, STEPS, qwen_prm_dir  # noqa: F401  (a fixture)

from tdrm_search import search_batch
from tdrm_search.baselines.full_sequence_prm import FullSequencePRM
from tdrm_search.baselines.one_call_per_node import FullPathRescoring, OneCallPerNode
from tdrm_search.loading import LAB_PRM, load_prm
from tdrm_search.prms.base import ScoreRequest
from tdrm_search.prms.hf import HFPRM

NEWEST = [ScoreRequest(PROBLEM, STEPS[:k], k - 1) for k in (1, 2, 3)]  # a step-wise search's requests


@pytest.fixture(scope="session")
def lab_prm_dir():
    return LAB_PRM


@pytest.fixture(scope="session")
def vllm_likelihood_prm():
    """The shipped lab PRM, a likelihood head."""
    return load_prm("lab", "vllm")


@pytest.mark.vllm
@pytest.mark.parametrize("fixture", ["vllm_random_prm", "vllm_value_prm", "vllm_likelihood_prm"])
def test_full_path_rescoring_reads_every_head_whole_and_uncached(fixture, request):
    prm = request.getfixturevalue(fixture)
    engine = prm.score(NEWEST)
    prm.score(NEWEST)  # everything the baseline sends is now in the prefix cache
    baseline = FullPathRescoring(prm).score(NEWEST)
    assert [s[0] for s in baseline.scores] == pytest.approx([s[0] for s in engine.scores], abs=1e-4)
    assert baseline.cached_tokens == [0, 0, 0]
    whole = [prm.head.encode(r.problem.question, r.steps, r.start)[-1] for r in NEWEST]
    assert baseline.tokens == [len(path.ids) for path in whole]


@pytest.mark.vllm
def test_one_call_per_node_beam_runs_with_the_shipped_prm(vllm_lab_policy, vllm_likelihood_prm, lab_problems):
    """The search-cost benchmark's baseline with `--model lab` (it once knew the LM head only)."""
    results = search_batch(
        lab_problems[:2],
        OneCallPerNode(vllm_lab_policy),
        FullPathRescoring(vllm_likelihood_prm),
        method="beam",
        n=4,
        beam_width=2,
        max_steps=4,
    )
    for r in results:
        assert r.stats["prm_calls"] >= 1 and r.stats["prm_tokens"] > 0 and r.stats["prm_cached_tokens"] == 0


@pytest.mark.parametrize("folder", ["random_prm_dir", "qwen_prm_dir", "value_prm_dir", "lab_prm_dir"])
def test_full_sequence_prm_scores_every_head_as_the_engine(folder, request):
    path = request.getfixturevalue(folder)
    requests = [ScoreRequest(PROBLEM, STEPS), *NEWEST[1:]]
    engine = HFPRM(path).score(requests)
    baseline = FullSequencePRM(HFPRM(path, cache_tokens=0)).score(requests)
    for got, want in zip(baseline.scores, engine.scores, strict=True):
        assert got == pytest.approx(want, abs=1e-5)
    assert baseline.tokens == engine.tokens and baseline.cached_tokens == [0, 0, 0]
