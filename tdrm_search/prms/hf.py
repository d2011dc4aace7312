"""A transformers PRM: the sequences that read a path's unscored steps (`encode_reads`) run batched, with the
key/values of scored sequences kept (bounded, least recently used first out) so a child computes only its new
step (and, for the value head, the few end-of-turn tokens after it)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
)

from tdrm_search.kv_cache import KV, PrefixKVCache, as_kv, batch_cache, crop
from tdrm_search.prms.base import ScoreOutput, ScoreRequest
from tdrm_search.prms.config import PRMConfig, check_value_model
from tdrm_search.prms.encoding import (
    EncodedPath,
    check_format,
    common_length,
    encode_reads,
    pad_values,
    right_pad,
    single_token_id,
)
from tdrm_search.prms.likelihood import LikelihoodReadout, step_least_logprobs
from tdrm_search.prms.qwen_prm import Qwen2ProcessRewardModel, is_process_reward_model


def lm_readout(logits: torch.Tensor, good: int, bad: int) -> torch.Tensor:
    """P(good) / (P(good) + P(bad)) from LM logits at step tags."""
    return torch.softmax(logits[..., [good, bad]].float(), -1)[..., 0]


def load_model(folder: str | Path, config: PRMConfig, dtype: torch.dtype):
    if config.head == "value":
        check_value_model(folder)
        return AutoModelForSequenceClassification.from_pretrained(folder, dtype=dtype)
    if config.head in ("lm", "likelihood"):
        return AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    if is_process_reward_model(folder):
        return Qwen2ProcessRewardModel.from_pretrained(folder, dtype=dtype)
    return AutoModelForTokenClassification.from_pretrained(folder, dtype=dtype)


def backbone_and_head(model, head: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The decoder that yields hidden states and the layer that reads them (LM head or classifier)."""
    backbone = model.model if isinstance(model, Qwen2ProcessRewardModel) else model.base_model
    if head in ("lm", "likelihood"):
        return backbone, model.get_output_embeddings()
    return backbone, model.score if hasattr(model, "score") else model.classifier


class HFPRM:
    """A PRM folder (model + tokenizer + tdrm_prm.json), or a model object with its tokenizer and config.
    `cache_tokens` bounds the stored key/values of scored paths (0 turns reuse off). The PRM must be a causal
    decoder: a step's value may depend on the steps before it only."""

    def __init__(
        self,
        model,
        tokenizer=None,
        config: PRMConfig | None = None,
        *,
        batch_size: int = 16,
        cache_tokens: int = 65_536,
        dtype: torch.dtype = torch.float32,
    ):
        where = "HFPRM model object"
        if isinstance(model, (str, Path)):
            where = str(model)
            config = config or PRMConfig.load(model)
            tokenizer = tokenizer or AutoTokenizer.from_pretrained(model)
            model = load_model(model, config, dtype)
        if tokenizer is None or config is None:
            raise ValueError("HFPRM needs a tokenizer and a PRMConfig when given a model object")
        check_format(tokenizer, config, where)
        self.model, self.tokenizer, self.config, self.batch_size = model.eval(), tokenizer, config, batch_size
        self.backbone, self.head = backbone_and_head(model, config.head)
        if config.head == "lm":
            self.good = single_token_id(tokenizer, config.good_token, "good_token")
            self.bad = single_token_id(tokenizer, config.bad_token, "bad_token")
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.kv = PrefixKVCache(cache_tokens)
        self.likelihood = None
        if config.head == "likelihood":  # a model in training carries its read-out; a loaded one has it in config
            self.likelihood = getattr(model, "likelihood_readout", None) or LikelihoodReadout(config.scale, config.bias)

    def encode(self, request: ScoreRequest) -> list[EncodedPath]:
        return encode_reads(
            self.tokenizer,
            self.config,
            request.problem.question,
            request.steps,
            request.start,
            self.model.config.max_position_embeddings,
        )

    def readout(self, hidden: torch.Tensor) -> torch.Tensor:
        """Values from hidden states at read-out positions."""
        logits = self.head(hidden)
        if self.config.head == "lm":
            return lm_readout(logits, self.good, self.bad)
        if self.config.head == "value":
            return torch.sigmoid(logits.float()[..., 0])
        return torch.softmax(logits.float(), -1)[..., self.config.positive_label]

    @torch.inference_mode()
    def run(
        self, rows: list[list[int]], past: KV | None, start: int, reads: list[list[int]]
    ) -> tuple[list[torch.Tensor], KV]:
        """Rows of new ids after a shared `past` of `start` tokens (right padding, so padded positions are
        never read); values at each row's absolute positions `reads`, and the batch's key/values."""
        ids, mask = right_pad(rows, self.pad)
        batch = len(rows)
        cache = batch_cache(past, batch)
        hidden = self.backbone(
            input_ids=ids,
            attention_mask=torch.cat([torch.ones(batch, start, dtype=torch.long), mask], 1),
            position_ids=torch.arange(start, start + ids.shape[1]).expand(batch, -1),
            past_key_values=cache,
            use_cache=True,
        ).last_hidden_state
        values = [self.readout(hidden[i, [p - start for p in at]]) for i, at in enumerate(reads)]
        return values, as_kv(cache)

    def step_values(self, paths: list[EncodedPath]) -> list[torch.Tensor]:
        """Values at the read positions of whole sequences, nothing read from or written to the store."""
        return self.run([p.ids for p in paths], None, 0, [p.ends for p in paths])[0]

    def score(self, requests: list[ScoreRequest]) -> ScoreOutput:
        if self.likelihood is not None:
            return self.score_likelihood(requests)
        encoded = [self.encode(r) for r in requests]
        rows = [(i, row) for i, seqs in enumerate(encoded) for row in seqs if row.ends]  # the rest do not fit
        values, cached = self.score_rows([row for _, row in rows])
        scores: list[list[float]] = [[] for _ in requests]
        hits = [0] * len(requests)
        for (i, _), v, c in zip(rows, values, cached, strict=True):
            scores[i] += v
            hits[i] += c
        scores = [pad_values(v, len(r.steps) - r.start) for v, r in zip(scores, requests, strict=True)]
        return ScoreOutput(scores, [sum(len(row.ids) for row in seqs) for seqs in encoded], hits)

    @torch.inference_mode()
    def score_likelihood(self, requests: list[ScoreRequest]) -> ScoreOutput:
        """The likelihood head reads each whole path (m_t needs every step's tokens), batched, nothing stored."""
        paths = [self.encode(r)[0] for r in requests]
        values: list[list[float]] = [[] for _ in requests]
        for c in range(0, len(paths), self.batch_size):
            chunk = [i for i in range(c, min(c + self.batch_size, len(paths))) if paths[i].ends]
            if chunk:
                least = step_least_logprobs(self.model, [paths[i] for i in chunk], self.pad)
                for i, m in zip(chunk, least, strict=True):
                    values[i] = torch.sigmoid(self.likelihood(m)).tolist()
        scores = [pad_values(v, len(r.steps))[r.start :] for v, r in zip(values, requests, strict=True)]
        return ScoreOutput(scores, [len(p.ids) for p in paths], [0] * len(paths))

    def score_rows(self, rows: list[EncodedPath]) -> tuple[list[list[float]], list[int]]:
        """Each row's values and how many of its tokens came from the store or from a part it shares with other
        rows of the call, which is computed once (counted as computed on one of them)."""
        values: list[list[float]] = [[] for _ in rows]
        cached = [0] * len(rows)
        groups: dict[tuple[int, ...], list[int]] = {}  # a stored prefix -> the rows that continue it
        pasts: dict[tuple[int, ...], KV | None] = {}
        for i, row in enumerate(rows):
            length, entry = self.kv.longest_prefix(tuple(row.ids))
            prefix = tuple(row.ids[: min(length, row.ends[0])])  # the first value read must be computed now
            groups.setdefault(prefix, []).append(i)
            pasts[prefix] = crop(entry.kv, len(prefix)) if prefix else None
        stack = [(prefix, pasts[prefix], members) for prefix, members in groups.items()]
        while stack:  # a trie walk: each part that several rows share is computed once, then they split
            prefix, past, members = stack.pop()
            prefix, past = self.shared_prefix(prefix, past, members, rows, cached)
            branches: dict[int | None, list[int]] = {}  # by the next token, None for rows that read here
            for i in members:
                branches.setdefault(rows[i].ids[len(prefix)] if rows[i].ends[0] > len(prefix) else None, []).append(i)
            if len(branches) > 1 and any(len(b) > 1 for b in branches.values()):
                stack += [(prefix, past, branch) for branch in branches.values()]
                continue
            members.sort(key=lambda i: len(rows[i].ids))
            for chunk in (members[j : j + self.batch_size] for j in range(0, len(members), self.batch_size)):
                out, kv = self.run(
                    [rows[i].ids[len(prefix) :] for i in chunk], past, len(prefix), [rows[i].ends for i in chunk]
                )
                for r, i in enumerate(chunk):
                    values[i] = out[r].tolist()
                    cached[i] += len(prefix)
                    self.kv.keep(rows[i].prefix, [(k[r : r + 1], v[r : r + 1]) for k, v in kv])
        return values, cached

    def shared_prefix(
        self, prefix: tuple[int, ...], past: KV | None, members: list[int], rows: list[EncodedPath], cached: list[int]
    ) -> tuple[tuple[int, ...], KV | None]:
        """`prefix` and its key/values extended by what all `members` share (up to the first value they read),
        computed once and stored; the computed part is debited from the first member's cached count."""
        if len(members) < 2:
            return prefix, past
        limit = min(rows[i].ends[0] for i in members)
        shared = min(common_length([rows[i].ids for i in members]), limit)
        if shared > len(prefix):
            first = rows[members[0]].ids
            _, past = self.run([first[len(prefix) : shared]], past, len(prefix), [[]])
            cached[members[0]] -= shared - len(prefix)
            prefix = tuple(first[:shared])
            self.kv.keep(prefix, past)
        return prefix, past
