"""The likelihood head: values are sigmoid(scale * m_t + bias) of the running least likely token, the same in a
padded batch, from `start`, in transformers and in vLLM; training calibrates (scale, bias), trains the LM through
m_t, and exports a plain causal-LM folder with the read-out in tdrm_prm.json."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors import safe_open
from test_prm_model import POLICY, lab_rollouts
from transformers import AutoModelForCausalLM, AutoTokenizer

from prm_train.export import export_checkpoint
from prm_train.model import attach_readout, check_tokenizer, encode_rollouts, read_logits
from prm_train.objective import calibrate, round_targets
from prm_train.targets import TargetSpec
from prm_train.train import TrainConfig, train_prm
from tdrm_search.loading import load_prm
from tdrm_search.prms.base import ScoreRequest
from tdrm_search.prms.config import PRMConfig
from tdrm_search.prms.hf import HFPRM

CONFIG = PRMConfig(head="likelihood", step_join="\n\n", scale=2.0, bias=1.0)
ROLLOUTS = lab_rollouts(6, seed=21)
REQUESTS = [ScoreRequest(r.problem, tuple(r.steps)) for r in ROLLOUTS]


def direct_values(model, tok, rollout, config: PRMConfig) -> list[float]:
    """The definition, computed on the path's text one token at a time."""
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": rollout.problem.question}], add_generation_prompt=True, tokenize=False
    )
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    spans = []
    for k, step in enumerate(rollout.steps):
        step_ids = tok(("\n\n" if k else "") + step.strip(), add_special_tokens=False)["input_ids"]
        spans.append((len(ids), len(ids) + len(step_ids)))
        ids = ids + step_ids
    with torch.inference_mode():
        lp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
    out, running = [], 0.0
    for start, end in spans:
        running = min(running, min(lp[j - 1, ids[j]].item() for j in range(start, end)))
        out.append(1 / (1 + math.exp(-(config.scale * running + config.bias))))
    return out


@pytest.fixture(scope="module")
def tok():
    return AutoTokenizer.from_pretrained(POLICY)


@pytest.fixture(scope="module")
def policy_lm():
    return AutoModelForCausalLM.from_pretrained(POLICY).eval()


def test_values_are_the_sigmoid_of_the_running_least_likely_token(policy_lm, tok):
    prm = HFPRM(policy_lm, tok, CONFIG, batch_size=4)  # rollouts of different lengths padded together
    scores = prm.score(REQUESTS).scores
    for s, r in zip(scores, ROLLOUTS, strict=True):
        assert s == pytest.approx(direct_values(policy_lm, tok, r, CONFIG), abs=1e-5)
        assert all(a >= b for a, b in zip(s, s[1:], strict=False))  # an early unlikely token is carried forward
    tails = prm.score([ScoreRequest(r.problem, r.steps, len(r.steps) - 1) for r in REQUESTS]).scores
    assert [t[0] for t in tails] == pytest.approx([s[-1] for s in scores], abs=1e-6)


def test_the_training_read_out_is_the_engines(policy_lm, tok):
    packed = encode_rollouts(tok, CONFIG, ROLLOUTS, 512)
    model = AutoModelForCausalLM.from_pretrained(POLICY)
    attach_readout(model, CONFIG).eval()
    logits = read_logits(model, packed, check_tokenizer(model, tok, CONFIG), tok.pad_token_id)
    engine = [x for s in HFPRM(policy_lm, tok, CONFIG).score(REQUESTS).scores for x in s]
    assert torch.sigmoid(logits).tolist() == pytest.approx(engine, abs=1e-5)


def test_calibration_fits_scale_and_bias_without_touching_the_lm(tok):
    model = AutoModelForCausalLM.from_pretrained(POLICY)
    attach_readout(model, PRMConfig(head="likelihood", step_join="\n\n"))
    rollouts = lab_rollouts(24)
    packed = encode_rollouts(tok, CONFIG, rollouts, 512)
    readout = check_tokenizer(model, tok, CONFIG)
    targets = round_targets(model, rollouts, packed, readout, tok.pad_token_id, TargetSpec("outcome"), 0)
    keep = list(range(len(rollouts)))
    y = torch.tensor([t for ts in targets for t in ts])

    def loss() -> float:
        with torch.no_grad():
            return torch.nn.functional.binary_cross_entropy_with_logits(
                read_logits(model.eval(), packed, readout, tok.pad_token_id), y
            ).item()

    before, lm = loss(), {k: v.clone() for k, v in model.model.state_dict().items()}
    calibrate(model, packed, targets, keep, tok.pad_token_id)
    fitted = loss()
    assert fitted < before - 0.01
    assert all(torch.equal(v, model.model.state_dict()[k]) for k, v in lm.items())
    for p in model.likelihood_readout.parameters():  # the logistic fit is a minimum: a nudge only raises the loss
        for step in (0.05, -0.05):
            with torch.no_grad():
                p += step
            assert loss() > fitted
            with torch.no_grad():
                p -= step


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("likelihood-run")
    cfg = TrainConfig(TargetSpec("td_lambda"), rounds=2, epochs=1, batch_size=8, lr=1e-3)
    config = PRMConfig(head="likelihood", step_join="\n\n")
    train_prm(POLICY, lab_rollouts(16), config, cfg, run, progress=False, log=lambda s: None)
    return run


def test_training_exports_a_causal_lm_with_its_learned_read_out(trained, tmp_path):
    saved = json.loads((trained / "tdrm_prm.json").read_text())
    assert saved["head"] == "likelihood" and (saved["scale"], saved["bias"]) != (1.0, 0.0)
    with safe_open(trained / "model.safetensors", "pt") as f:
        assert not any(k.startswith("likelihood_readout") for k in f.keys())
    AutoModelForCausalLM.from_pretrained(trained)  # a plain causal-LM folder
    direct = HFPRM(trained).score(REQUESTS).scores
    assert HFPRM(export_checkpoint(trained, tmp_path / "prm")).score(REQUESTS).scores == direct
    assert load_prm(str(tmp_path / "prm"), backend="hf").score(REQUESTS).scores == direct


@pytest.mark.vllm
def test_vllm_reads_the_same_values(trained):
    hf = HFPRM(trained).score(REQUESTS).scores
    prm = load_prm(str(trained), backend="vllm")
    out = prm.score(REQUESTS)
    torch.testing.assert_close(
        torch.tensor([x for s in out.scores for x in s]), torch.tensor([x for s in hf for x in s]), atol=1e-4, rtol=0
    )
    tails = prm.score([ScoreRequest(r.problem, r.steps, len(r.steps) - 1) for r in REQUESTS]).scores
    assert [t[0] for t in tails] == pytest.approx([s[-1] for s in hf], abs=1e-4)
