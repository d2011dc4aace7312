"""The PRM model: a backbone and its head's read-out (`tdrm_search.prms.heads`): a causal LM read at step tags
(P(good) against P(bad)), a 1-logit sequence-classification head read at the last token of each step's
conversation (the value head), or the LM's own least likely token so far through a learned (scale, bias) (the
likelihood head). Rollouts are encoded exactly as the engine's `HFPRM` / `VLLMPRM` encode them at inference (the
head's `encode`), packed one rollout to a row."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoTokenizer

from prm_train.data import Rollout
from tdrm_search.devices import model_device, placement
from tdrm_search.prms.config import PRMConfig
from tdrm_search.prms.encoding import EncodedPath, common_length, pad_values
from tdrm_search.prms.heads import HEAD_TYPES, Head, head_for

TRAINABLE_HEADS = tuple(name for name, head in HEAD_TYPES.items() if head.trainable)


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


def check_tokenizer(model, tokenizer, config: PRMConfig) -> Head:
    """The read-out (the config's head on this tokenizer); a clear error when the tokenizer does not fit the PRM
    format or the model."""
    if not HEAD_TYPES[config.head].trainable:
        raise ValueError(f"prm_train trains heads {TRAINABLE_HEADS}; config head is {config.head!r}")
    vocab = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > vocab:
        raise ValueError(f"tokenizer has {len(tokenizer)} tokens but the model embeds {vocab}: mismatched tokenizer")
    head = head_for(config, tokenizer)
    head.check_format("PRM training")
    head.check_model(model)
    return head


def load_backbone(
    base: str | Path, config: PRMConfig, seed: int = 0, device: str = "auto", dtype: str = "auto"
) -> tuple[torch.nn.Module, object]:
    """The model to train and its tokenizer from a causal-LM folder (e.g. the lab policy), in training mode on
    `device` in `dtype` ("auto": a CUDA GPU when present, else the CPU; bfloat16 on a GPU, float32 on the CPU), as
    the config's head starts it (`init_model`)."""
    where, precision = placement(device, dtype)
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    return head_for(config, tokenizer).init_model(base, precision).to(where).train(), tokenizer


def add_lora(model, config: PRMConfig, r: int, alpha: float):
    """LoRA adapters (peft, rank `r`) on every linear layer of `model`'s backbone, in place: the backbone's weights
    freeze, the adapters and the head's own read-out (the value head's fresh `score`, the likelihood head's
    (scale, bias)) train. Returns the peft wrapper, whose `merge_and_unload()` gives the plain model back."""
    from peft import LoraConfig, get_peft_model

    readout = [n for n, _ in model.named_parameters() if n.startswith(("score.", "likelihood_readout."))]
    excluded = ["score"] if hasattr(model, "score") else None  # the value head's fresh layer trains whole
    lora = LoraConfig(r=r, lora_alpha=alpha, target_modules="all-linear", exclude_modules=excluded)
    wrapped = get_peft_model(model, lora)
    for name, param in model.named_parameters():
        if name in readout:
            param.requires_grad_(True)
    return wrapped


def packed_path(packed: Packed) -> EncodedPath:
    """A single-path row (tag and likelihood heads) as the path it packs."""
    return EncodedPath(packed.ids, packed.ends, prompt=packed.prompt)


def attach_readout(model, config: PRMConfig):
    """`model` with the read-out parameters its head trains beside it (the likelihood head's (scale, bias))."""
    return HEAD_TYPES[config.head].attach(model, config)


def encode_rollouts(tokenizer, config: PRMConfig, rollouts: Sequence[Rollout], max_len: int) -> list[Packed]:
    """Each rollout as the PRM reads it at inference (its head's `encode`), packed; steps past `max_len` lose their
    read-out position."""
    head = head_for(config, tokenizer)
    return [Packed.of(head.encode(r.problem.question, r.steps, 0, max_len)) for r in rollouts]


def read_logits(model, packed: Sequence[Packed], readout: Head, pad: int) -> torch.Tensor:
    """The logit whose sigmoid is the engine's value, at every read position of every rollout, concatenated rollout
    by rollout (differentiable): the head's `logits` on the hidden states at its read positions.

    Right padding; each row's own mask (padding attends only to itself and is never read). A head that reads
    whole paths (the likelihood head) reads each single-path row with its `path_logits`."""
    if not readout.reuses_prefixes:
        return torch.cat(readout.path_logits(model, [packed_path(p) for p in packed], pad))
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
    where = model_device(model)
    ids, mask, positions = ids.to(where), mask.to(where), positions.to(where)
    hidden = model.base_model(input_ids=ids, attention_mask=mask, position_ids=positions).last_hidden_state
    rows = torch.tensor([i for i, p in enumerate(packed) for _ in p.ends], dtype=torch.long, device=where)
    cols = torch.tensor([e for p in packed for e in p.ends], dtype=torch.long, device=where)
    return readout.logits(model, hidden[rows, cols])


@torch.inference_mode()
def rollout_values(
    model, packed: Sequence[Packed], rollouts: Sequence[Rollout], readout: Head, pad: int, batch_size: int = 64
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
