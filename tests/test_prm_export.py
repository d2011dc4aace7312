"""Export → load round trip: a trained PRM folder scores identically in memory, in HFPRM and in VLLMPRM, and
search takes it by path."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_qwen2
from test_prm_model import CONFIG, POLICY, lab_rollouts
from transformers import AutoTokenizer

from prm_train.export import export_checkpoint
from prm_train.targets import TargetSpec
from prm_train.train import TrainConfig, fit, train_prm
from tdrm_search.engine import search
from tdrm_search.loading import load_prm
from tdrm_search.prms.base import ScoreRequest
from tdrm_search.prms.hf import HFPRM

REQUESTS = [ScoreRequest(r.problem, tuple(r.steps)) for r in lab_rollouts(6, seed=21)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, lab_base):
    """A tiny PRM trained a few steps from a random backbone, as a run folder."""
    run = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(TargetSpec("td_lambda"), rounds=2, epochs=1, batch_size=8, lr=3e-3)
    train_prm(lab_base, lab_rollouts(16), CONFIG, cfg, run, progress=False, log=lambda s: None)
    return run


def test_run_folder_and_exported_checkpoint_score_identically(trained, tmp_path):
    direct = HFPRM(trained).score(REQUESTS).scores
    exported = HFPRM(export_checkpoint(trained, tmp_path / "prm")).score(REQUESTS).scores
    assert exported == direct
    assert load_prm(str(tmp_path / "prm"), backend="hf").score(REQUESTS).scores == direct
    assert not (tmp_path / "prm" / "checkpoint.pt").exists()


def test_in_memory_model_matches_its_export(tmp_path):
    tok = AutoTokenizer.from_pretrained(POLICY)
    model = tiny_qwen2(len(tok), seed=4)
    fit(
        model,
        tok,
        CONFIG,
        lab_rollouts(8),
        TrainConfig(TargetSpec("outcome"), epochs=1, batch_size=4),
        run_dir=tmp_path,
        progress=False,
        log=lambda s: None,
    )
    from prm_train.export import export

    export(model, tok, CONFIG, tmp_path / "prm")
    assert HFPRM(tmp_path / "prm").score(REQUESTS).scores == HFPRM(model, tok, CONFIG).score(REQUESTS).scores


def test_search_takes_a_trained_prm_by_path(trained, hf_lab_policy):
    result = search(REQUESTS[0].problem, hf_lab_policy, load_prm(str(trained), backend="hf"), method="best_of_n", n=2)
    assert len(result.candidates) == 2 and all(0 <= s <= 1 for t in result.candidates for s in t.step_scores)


@pytest.fixture(scope="module")
def vllm_prm(trained):
    return load_prm(str(trained), backend="vllm")


@pytest.mark.vllm
def test_vllm_scores_match_hf(trained, vllm_prm):
    hf = HFPRM(trained).score(REQUESTS)
    out = vllm_prm.score(REQUESTS)
    torch.testing.assert_close(
        torch.tensor([x for s in out.scores for x in s]),
        torch.tensor([x for s in hf.scores for x in s]),
        atol=1e-4,
        rtol=0,
    )
    # scoring only the last step of each path reads the same values, its prefix served from the cache
    tail = vllm_prm.score([ScoreRequest(r.problem, r.steps, len(r.steps) - 1) for r in REQUESTS])
    assert [s[-1] for s in tail.scores] == pytest.approx([s[-1] for s in out.scores], abs=1e-5)
    assert sum(tail.cached_tokens) > 0
