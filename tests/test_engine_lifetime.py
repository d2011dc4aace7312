"""Engines a user builds one after another must not break each other (vLLM's in-process teardown did)."""

from __future__ import annotations

import gc

import pytest

from tdrm_search.engine import search
from tdrm_search.loading import load_prm
from tdrm_search.vllm_engine import make_llm

pytestmark = pytest.mark.vllm


def test_loading_prms_in_a_loop_keeps_the_policy_working(vllm_lab_policy, lab_problems, random_prm_dir):
    """The issue's reproduction: with a policy alive, rebind `prm` to newly loaded PRMs, the old one dropped."""
    for spec in ("lab", "lab", str(random_prm_dir), "lab"):
        prm = load_prm(spec, "vllm")
        gc.collect()
        result = search(lab_problems[0], vllm_lab_policy, prm, method="beam", n=4, beam_width=2, max_steps=3)
        assert result.stats["generate_calls"] >= 2 and result.candidates
    assert load_prm("lab", "vllm").llm is prm.llm  # the same model and options: the engine already built
    assert make_llm(random_prm_dir) is load_prm(str(random_prm_dir), "vllm").llm
