"""The PRM model: a causal-LM backbone read out at step tags (P(good) against P(bad)), encoded exactly as the
engine's `HFPRM` / `VLLMPRM` encode paths at inference (`encode_path`), scored with `HFPRM.step_values`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from prm_train.data import Rollout
from tdrm_search.prms.config import PRMConfig
from tdrm_search.prms.encoding import EncodedPath, encode_path, single_token_id
from tdrm_search.prms.hf import HFPRM, right_pad


def check_tokenizer(model, tokenizer, config: PRMConfig) -> tuple[int, int]:
    """The good/bad token ids; a clear error when the tokenizer does not fit the PRM format or the model."""
    if config.head != "lm":
        raise ValueError(f"prm_train trains LM-head PRMs; config head is {config.head!r}")
    single_token_id(tokenizer, config.step_tag, "step_tag")
    good = single_token_id(tokenizer, config.good_token, "good_token")
    bad = single_token_id(tokenizer, config.bad_token, "bad_token")
    vocab = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > vocab:
        raise ValueError(f"tokenizer has {len(tokenizer)} tokens but the model embeds {vocab}: mismatched tokenizer")
    return good, bad


def load_backbone(base: str | Path, seed: int = 0) -> tuple[torch.nn.Module, object]:
    """A causal LM and its tokenizer from a model folder (e.g. the lab policy), in float32 training mode."""
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    return model.train(), AutoTokenizer.from_pretrained(base)


def encode_rollouts(tokenizer, config: PRMConfig, rollouts: Sequence[Rollout], max_len: int) -> list[EncodedPath]:
    """Each rollout as the PRM sees it at inference; steps past `max_len` lose their read-out position."""
    return [encode_path(tokenizer, config, r.problem.question, r.steps, max_len) for r in rollouts]


def tag_logits(model, paths: Sequence[EncodedPath], good: int, bad: int, pad: int) -> torch.Tensor:
    """logit(good) − logit(bad) at every step tag of every path, concatenated path by path (differentiable).

    sigmoid of it is the engine's read-out P(good) / (P(good) + P(bad)). Right padding with each row's own
    attention mask; only each row's own tag positions are gathered, so padding is never read."""
    ids, mask = right_pad([p.ids for p in paths], pad)
    logits = model(input_ids=ids, attention_mask=mask).logits
    rows = torch.tensor([i for i, p in enumerate(paths) for _ in p.ends], dtype=torch.long)
    cols = torch.tensor([e for p in paths for e in p.ends], dtype=torch.long)
    at_tags = logits[rows, cols]
    return at_tags[:, good] - at_tags[:, bad]


def score_paths(prm: HFPRM, paths: Sequence[EncodedPath], batch_size: int = 64) -> list[list[float]]:
    """Every step value of every path via `HFPRM.step_values`, batched by length to keep padding small."""
    order = sorted(range(len(paths)), key=lambda i: len(paths[i].ids))
    out: list[list[float]] = [[] for _ in paths]
    for i in range(0, len(order), batch_size):
        chunk = order[i : i + batch_size]
        for j, values in zip(chunk, prm.step_values([paths[j] for j in chunk])):
            out[j] = values.tolist()
    return out
