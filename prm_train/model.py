"""The PRM model: a causal-LM backbone read out at step tags (P(good) against P(bad)), or a 1-logit
sequence-classification head read at the last token of each step's conversation (the value head). Rollouts are
encoded exactly as the engine's `HFPRM` / `VLLMPRM` encode them at inference (`encode_reads`) and scored with
`HFPRM.step_values`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from prm_train.data import Rollout
from tdrm_search.prms.config import PRMConfig
from tdrm_search.prms.encoding import EncodedPath, check_format, encode_reads, pad_values, single_token_id
from tdrm_search.prms.hf import HFPRM, right_pad

TRAINABLE_HEADS = ("lm", "value")


@dataclass(frozen=True)
class Readout:
    """Where the trained logit comes from; its sigmoid is the engine's value."""

    head: str
    good: int | None = None
    bad: int | None = None


@dataclass(frozen=True)
class Row:
    """One sequence the PRM runs for `rollout`, reading the values of steps `step`, `step + 1`, ..."""

    rollout: int
    step: int
    path: EncodedPath


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
        return AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).train(), tokenizer
    if tokenizer.pad_token is None:
        tokenizer.add_special_tokens({"pad_token": "[PAD]"})
    model = AutoModelForSequenceClassification.from_pretrained(
        base, dtype=torch.float32, num_labels=1, pad_token_id=tokenizer.pad_token_id
    )
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    return model.train(), tokenizer


def encode_rollouts(tokenizer, config: PRMConfig, rollouts: Sequence[Rollout], max_len: int) -> list[Row]:
    """Each rollout as the PRM sees it at inference; steps past `max_len` lose their read-out position."""
    rows = []
    for i, r in enumerate(rollouts):
        step = 0
        for path in encode_reads(tokenizer, config, r.problem.question, r.steps, 0, max_len):
            rows.append(Row(i, step, path))
            step += len(path.ends)
    return rows


def read_logits(model, paths: Sequence[EncodedPath], readout: Readout, pad: int) -> torch.Tensor:
    """The logit whose sigmoid is the engine's value, at every read position of every path, concatenated path by
    path (differentiable): logit(good) − logit(bad) at step tags, or the value head's logit.

    Right padding with each row's own attention mask; only each row's own read positions are gathered, so
    padding is never read."""
    ids, mask = right_pad([p.ids for p in paths], pad)
    hidden = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
    rows = torch.tensor([i for i, p in enumerate(paths) for _ in p.ends], dtype=torch.long)
    cols = torch.tensor([e for p in paths for e in p.ends], dtype=torch.long)
    at_reads = hidden[rows, cols]
    if readout.head == "value":
        return model.score(at_reads)[:, 0]
    logits = model.get_output_embeddings()(at_reads)
    return logits[:, readout.good] - logits[:, readout.bad]


def rollout_values(prm: HFPRM, rows: Sequence[Row], rollouts: Sequence[Rollout], batch_size: int = 64
                   ) -> list[list[float]]:
    """Every step value of every rollout via `HFPRM.step_values` (0 past the context), batched by length."""
    order = sorted((i for i, row in enumerate(rows) if row.path.ends), key=lambda i: len(rows[i].path.ids))
    values: dict[int, list[float]] = {}
    for c in range(0, len(order), batch_size):
        chunk = order[c : c + batch_size]
        values |= {i: v.tolist() for i, v in zip(chunk, prm.step_values([rows[i].path for i in chunk]))}
    out: list[list[float]] = [[] for _ in rollouts]
    for i, row in enumerate(rows):  # a rollout's rows are in step order
        out[row.rollout] += values.get(i, [])
    return [pad_values(v, len(r.steps)) for v, r in zip(out, rollouts)]


def reads_per_rollout(rows: Sequence[Row], count: int) -> list[int]:
    """How many of each rollout's steps have a read-out position (the rest fall past the context)."""
    reads = [0] * count
    for row in rows:
        reads[row.rollout] += len(row.path.ends)
    return reads
