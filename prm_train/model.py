"""The PRM model: a causal-LM backbone read out at step tags (P(good) against P(bad)), a 1-logit
sequence-classification head read at the last token of each step's conversation (the value head), or the LM's own
least likely token so far through a learned (scale, bias) (the likelihood head). Rollouts are
encoded exactly as the engine's `HFPRM` / `VLLMPRM` encode them at inference (`encode_reads`), packed one
rollout to a row."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from prm_train.data import Rollout
from tdrm_search.prms.config import PRMConfig
from tdrm_search.prms.encoding import (
    EncodedPath,
    check_format,
    common_length,
    encode_reads,
    pad_values,
    single_token_id,
)
from tdrm_search.prms.likelihood import LikelihoodReadout, step_least_logprobs

TRAINABLE_HEADS = ("lm", "value", "likelihood")


@dataclass(frozen=True)
class Readout:
    """Where the trained logit comes from; its sigmoid is the engine's value."""

    head: str
    good: int | None = None
    bad: int | None = None


@dataclass(frozen=True)
class Packed:
    """Every sequence the PRM reads one rollout with, run as one: the longest shared body, then each sequence's
    own tail (the tokens past what it shares with the body). A tail token sees the body as far as its sequence
    shares it and its own tail; its position ids continue from there. So the value head's T sequences cost about
    one, with the same logits as T separate runs. A tag-head rollout is one sequence with no tails."""

    ids: list[int]
    positions: list[int]
    segment: list[int]  # per token: 0 in the body, k + 1 in tail k
    sees: list[int]  # per token: how many leading body tokens it attends to
    ends: list[int]  # read positions, in step order
    prompt: int = 0  # a single path's ids before its first step

    @classmethod
    def of(cls, paths: Sequence[EncodedPath]) -> Packed:
        body = max((p.ids[: p.shared] for p in paths), key=len, default=[])
        n = len(body)
        ids, positions, segment, sees = list(body), list(range(n)), [0] * n, list(range(1, n + 1))
        ends = []
        for k, path in enumerate(paths):
            shared = common_length([path.ids, body])
            ends += [end if end < shared else len(ids) + end - shared for end in path.ends]
            tail = path.ids[shared:]
            ids += tail
            positions += range(shared, shared + len(tail))
            segment += [k + 1] * len(tail)
            sees += [shared] * len(tail)
        return cls(ids, positions, segment, sees, ends, paths[0].prompt if len(paths) == 1 else 0)

    def mask(self) -> torch.Tensor:
        """[tokens, tokens] True where a query token (row) may attend a key token (column)."""
        seg, sees = torch.tensor(self.segment), torch.tensor(self.sees)
        index = torch.arange(len(self.ids))
        in_body = (seg[None, :] == 0) & (index[None, :] < sees[:, None])
        own_tail = (seg[None, :] == seg[:, None]) & (seg[:, None] != 0) & (index[None, :] <= index[:, None])
        return in_body | own_tail


def check_tokenizer(model, tokenizer, config: PRMConfig) -> Readout:
    """The read-out; a clear error when the tokenizer does not fit the PRM format or the model."""
    if config.head not in TRAINABLE_HEADS:
        raise ValueError(f"prm_train trains heads {TRAINABLE_HEADS}; config head is {config.head!r}")
    vocab = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > vocab:
        raise ValueError(f"tokenizer has {len(tokenizer)} tokens but the model embeds {vocab}: mismatched tokenizer")
    check_format(tokenizer, config, "PRM training")
    if config.head == "value":
        if getattr(getattr(model, "score", None), "out_features", None) != 1:
            raise ValueError("a 'value' PRM trains a sequence-classification model with one label (num_labels=1)")
        return Readout("value")
    if config.head == "likelihood":
        return Readout("likelihood")
    single_token_id(tokenizer, config.step_tag, "step_tag")
    good = single_token_id(tokenizer, config.good_token, "good_token")
    bad = single_token_id(tokenizer, config.bad_token, "bad_token")
    return Readout("lm", good, bad)


def load_backbone(base: str | Path, config: PRMConfig, seed: int = 0) -> tuple[torch.nn.Module, object]:
    """The model to train and its tokenizer from a causal-LM folder (e.g. the lab policy), in float32 training
    mode. The value head is a fresh 1-logit `score` layer on the same backbone; a tokenizer without a pad token
    gets TDRM's added `[PAD]` (embeddings resized)."""
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    if config.head != "value":
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        return attach_readout(model, config).train(), tokenizer
    if tokenizer.pad_token is None:
        tokenizer.add_special_tokens({"pad_token": "[PAD]"})
    model = AutoModelForSequenceClassification.from_pretrained(
        base, dtype=torch.float32, num_labels=1, pad_token_id=tokenizer.pad_token_id
    )
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    return model.train(), tokenizer


def packed_path(packed: Packed) -> EncodedPath:
    """A single-path row (tag and likelihood heads) as the path it packs."""
    return EncodedPath(packed.ids, packed.ends, prompt=packed.prompt)


def attach_readout(model, config: PRMConfig):
    """A likelihood-head PRM trains its (scale, bias) with the LM: kept as the submodule `likelihood_readout`
    (in checkpoints; `export` writes it to tdrm_prm.json)."""
    if config.head == "likelihood":
        model.likelihood_readout = LikelihoodReadout(config.scale, config.bias)
    return model


def encode_rollouts(tokenizer, config: PRMConfig, rollouts: Sequence[Rollout], max_len: int) -> list[Packed]:
    """Each rollout as the PRM reads it at inference (`encode_reads`), packed; steps past `max_len` lose their
    read-out position."""
    return [Packed.of(encode_reads(tokenizer, config, r.problem.question, r.steps, 0, max_len)) for r in rollouts]


def read_logits(model, packed: Sequence[Packed], readout: Readout, pad: int) -> torch.Tensor:
    """The logit whose sigmoid is the engine's value, at every read position of every rollout, concatenated rollout
    by rollout (differentiable): logit(good) − logit(bad) at step tags, or the value head's logit.

    Right padding; each row's own mask (padding attends only to itself and is never read). The likelihood head:
    its read-out of m_t, the least likely token so far (`tdrm_search.prms.likelihood`)."""
    if readout.head == "likelihood":
        least = step_least_logprobs(model, [packed_path(p) for p in packed], pad)
        return model.likelihood_readout(torch.cat(least))
    width = max(len(p.ids) for p in packed)
    ids = torch.full((len(packed), width), pad, dtype=torch.long)
    positions = torch.zeros((len(packed), width), dtype=torch.long)
    allowed = torch.eye(width, dtype=torch.bool).repeat(len(packed), 1, 1)
    for i, p in enumerate(packed):
        ids[i, : len(p.ids)] = torch.tensor(p.ids)
        positions[i, : len(p.ids)] = torch.tensor(p.positions)
        allowed[i, : len(p.ids), : len(p.ids)] = p.mask()
    dtype = model.get_input_embeddings().weight.dtype
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)[:, None]
    hidden = model.base_model(input_ids=ids, attention_mask=mask, position_ids=positions).last_hidden_state
    rows = torch.tensor([i for i, p in enumerate(packed) for _ in p.ends], dtype=torch.long)
    cols = torch.tensor([e for p in packed for e in p.ends], dtype=torch.long)
    at_reads = hidden[rows, cols]
    if readout.head == "value":
        return model.score(at_reads)[:, 0]
    logits = model.get_output_embeddings()(at_reads)
    return logits[:, readout.good] - logits[:, readout.bad]


@torch.inference_mode()
def rollout_values(
    model, packed: Sequence[Packed], rollouts: Sequence[Rollout], readout: Readout, pad: int, batch_size: int = 64
) -> list[list[float]]:
    """Every step value of every rollout (0 past the context), in length-sorted batches, in inference mode."""
    order = sorted((i for i, p in enumerate(packed) if p.ends), key=lambda i: len(packed[i].ids))
    values: list[list[float]] = [[] for _ in rollouts]
    for c in range(0, len(order), batch_size):
        chunk = order[c : c + batch_size]
        flat = torch.sigmoid(read_logits(model, [packed[i] for i in chunk], readout, pad).float()).tolist()
        for i in chunk:
            values[i], flat = flat[: len(packed[i].ends)], flat[len(packed[i].ends) :]
    return [pad_values(v, len(r.steps)) for v, r in zip(values, rollouts, strict=True)]
