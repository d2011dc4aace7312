"""A transformers PRM: the sequences that read a path's unscored steps (its head's `encode`) run batched, with the
key/values of scored sequences kept (bounded, least recently used first out) so a child computes only its new
step (and, for the value head, the few end-of-turn tokens after it). A head whose values need whole paths (the
likelihood head) reads each path whole instead. A head that writes a critique before its read (the generative
head) writes it greedily over the same store, so a prompt and the parts siblings share are computed once."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoTokenizer

from tdrm_search.devices import model_device, placement
from tdrm_search.kv_cache import KV, PrefixKVCache, as_kv, batch_cache, crop
from tdrm_search.prms.base import ScoreOutput, ScoreRequest
from tdrm_search.prms.config import PRMConfig
from tdrm_search.prms.encoding import EncodedPath, common_length, pad_values, right_pad
from tdrm_search.prms.heads import head_for
from tdrm_search.prms.heads.base import Spent


class HFPRM:
    """A PRM folder (model + tokenizer + tdrm_prm.json), or a model object with its tokenizer and config.
    `cache_tokens` bounds the stored key/values of scored paths (0 turns reuse off; a head that reads whole paths,
    the likelihood head, stores none). The PRM must be a causal decoder: a step's value may depend on the steps
    before it only. A folder loads on `device` in `dtype` ("auto": a CUDA GPU when present, else the CPU; bfloat16
    on a GPU, float32 on the CPU); a model object stays where it is unless `device` names one. Stored key/values
    stay on the model's device."""

    def __init__(
        self,
        model,
        tokenizer=None,
        config: PRMConfig | None = None,
        *,
        batch_size: int = 16,
        cache_tokens: int = 65_536,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "auto",
    ):
        folder = model if isinstance(model, (str, Path)) else None
        if folder is not None:
            config = config or PRMConfig.load(folder)
            tokenizer = tokenizer or AutoTokenizer.from_pretrained(folder)
        if tokenizer is None or config is None:
            raise ValueError("HFPRM needs a tokenizer and a PRMConfig when given a model object")
        self.head = head_for(config, tokenizer)
        self.head.check_format(str(folder) if folder is not None else "HFPRM model object")
        if folder is not None:
            where, precision = placement(device, dtype)
            model = self.head.load(folder, precision).to(where)
        elif str(device) != "auto":
            model = model.to(placement(device, "auto")[0])
        self.device = model_device(model)
        self.model, self.tokenizer, self.config, self.batch_size = model.eval(), tokenizer, config, batch_size
        self.backbone = model.base_model
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.kv = PrefixKVCache(cache_tokens)

    def encode(self, request: ScoreRequest) -> list[EncodedPath]:
        question, max_len = request.problem.question, self.model.config.max_position_embeddings
        return self.head.encode(question, request.steps, request.start, max_len)

    @torch.inference_mode()
    def run(
        self, rows: list[list[int]], past: KV | None, start: int, reads: list[list[int]]
    ) -> tuple[list[torch.Tensor], KV]:
        """Rows of new ids after a shared `past` of `start` tokens (right padding, so padded positions are
        never read); values at each row's absolute positions `reads`, and the batch's key/values."""
        ids, mask = right_pad(rows, self.pad, self.device)
        batch = len(rows)
        cache = batch_cache(past, batch)
        hidden = self.backbone(
            input_ids=ids,
            attention_mask=torch.cat([torch.ones(batch, start, dtype=torch.long, device=self.device), mask], 1),
            position_ids=torch.arange(start, start + ids.shape[1], device=self.device).expand(batch, -1),
            past_key_values=cache,
            use_cache=True,
        ).last_hidden_state
        values = [
            self.head.logits(self.model, hidden[i, [p - start for p in at]]).float().sigmoid()
            for i, at in enumerate(reads)
        ]
        return values, as_kv(cache)

    @torch.inference_mode()
    def step_values(self, paths: list[EncodedPath]) -> list[torch.Tensor]:
        """Values at the read positions of whole sequences, nothing read from or written to the store."""
        return [logits.float().sigmoid() for logits in self.head.path_logits(self.model, paths, self.pad)]

    def score(self, requests: list[ScoreRequest]) -> ScoreOutput:
        encoded = [self.encode(r) for r in requests]
        rows = [(i, row) for i, seqs in enumerate(encoded) for row in seqs if row.ends]  # the rest do not fit
        score = self.score_rows if self.head.reuses_prefixes else self.score_whole
        reads, spent = [row for _, row in rows], [Spent(0, 0) for _ in rows]
        if self.head.writes_critique:
            reads, spent = self.critique(reads)
        values, cached = score(reads)
        scores: list[list[float]] = [[] for _ in requests]
        tokens = [sum(len(row.ids) for row in seqs) for seqs in encoded]
        hits, generated = [0] * len(requests), [0] * len(requests)
        for (i, row), read, v, c, s in zip(rows, reads, values, cached, spent, strict=True):
            scores[i] += v
            tokens[i] += len(read.ids) - len(row.ids) + s.prompt
            hits[i] += c + s.cached
            generated[i] += s.generated
        scores = [pad_values(v, len(r.steps) - r.start) for v, r in zip(scores, requests, strict=True)]
        return ScoreOutput(scores, tokens, hits, generated)

    def critique(self, prompts: list[EncodedPath]) -> tuple[list[EncodedPath], list[Spent]]:
        """The sequences that read each prompt's verdict after its greedy critique (at most `critique_tokens`), and
        what writing it took: the prompts run first through `score_rows` (each computed once, the parts they share
        once, all kept in the store), then each critique is decoded from its stored prompt."""
        from tdrm_search.policies.base import SampleRequest
        from tdrm_search.policies.hf import HFPolicy

        budget = self.head.config.critique_tokens
        if not budget:
            return [self.head.verdict(p, ()) for p in prompts], [Spent(0, 0) for _ in prompts]
        _, cached = self.score_rows(prompts)
        writer = HFPolicy(self.model, self.tokenizer, cache_tokens=0)
        writer.kv = self.kv  # the PRM's store: the prompts just kept there, and the critiques for the reads
        requests = [SampleRequest(tuple(p.ids), n=1, max_tokens=budget, temperature=0.0) for p in prompts]
        critiques = [samples[0] for samples in writer.generate(requests, seed=0).samples]
        reads = [self.head.verdict(p, c.token_ids, c.finish == "eos") for p, c in zip(prompts, critiques, strict=True)]
        spent = [Spent(len(p.ids), h, len(c.token_ids)) for p, h, c in zip(prompts, cached, critiques, strict=True)]
        return reads, spent

    def score_whole(self, rows: list[EncodedPath]) -> tuple[list[list[float]], list[int]]:
        """Each row's values from the whole row, in batches, nothing stored."""
        chunks = (rows[c : c + self.batch_size] for c in range(0, len(rows), self.batch_size))
        return [v.tolist() for chunk in chunks for v in self.step_values(chunk)], [0] * len(rows)

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
