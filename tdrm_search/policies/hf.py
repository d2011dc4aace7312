"""A transformers policy that reuses the key/value cache of a node's prefix for all its children."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tdrm_search.devices import model_device, placement
from tdrm_search.kv_cache import KV, Entry, PrefixKVCache, as_kv, batch_cache, crop
from tdrm_search.policies.base import GenerateOutput, Sample, SampleRequest
from tdrm_search.policies.prompt import encode_question


def eos_ids(model, tokenizer) -> set[int]:
    configured = model.generation_config.eos_token_id
    ids = configured if isinstance(configured, list) else [configured]
    return {i for i in [*ids, tokenizer.eos_token_id] if i is not None}


def sample_tokens(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator) -> torch.Tensor:
    """One token per row: argmax at temperature 0, else nucleus sampling."""
    if temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, -1)
    if top_p < 1:
        sorted_probs, order = probs.sort(-1, descending=True)
        drop = sorted_probs.cumsum(-1) - sorted_probs > top_p
        probs = probs.scatter(-1, order, sorted_probs.masked_fill(drop, 0.0))
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


class HFPolicy:
    """transformers causal LM; `cache_tokens` bounds the prefix key/value store (LRU eviction).

    A folder loads on `device` in `dtype` ("auto": a CUDA GPU when present, else the CPU; bfloat16 on a GPU,
    float32 on the CPU). A model object stays where it is unless `device` names one ("auto" keeps it); its dtype is
    its own. The key/value store holds tensors on the model's device; samples draw from a generator there."""

    def __init__(
        self,
        model,
        tokenizer=None,
        *,
        prompt_template: str | None = None,
        cache_tokens: int = 65_536,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "auto",
    ):
        if isinstance(model, (str, Path)):
            where, precision = placement(device, dtype)
            tokenizer = tokenizer or AutoTokenizer.from_pretrained(model)
            model = AutoModelForCausalLM.from_pretrained(model, dtype=precision).to(where)
        elif str(device) != "auto":
            model = model.to(placement(device, "auto")[0])
        if tokenizer is None:
            raise ValueError("HFPolicy needs a tokenizer when given a model object")
        self.device = model_device(model)
        self.model, self.tokenizer, self.prompt_template = model.eval(), tokenizer, prompt_template
        self.kv = PrefixKVCache(cache_tokens)
        self.eos = eos_ids(model, tokenizer)

    @property
    def max_model_len(self) -> int:
        return self.model.config.max_position_embeddings

    def encode_prompt(self, question: str) -> list[int]:
        return encode_question(self.tokenizer, question, self.prompt_template)

    def decode(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=True)

    @torch.inference_mode()
    def generate(self, requests: list[SampleRequest], seed: int) -> GenerateOutput:
        shared = torch.Generator(self.device).manual_seed(seed)
        samples, cached = [], []
        for request in requests:
            kv, logits, hit = self.prefill(request.prefix)
            own = None if request.seed is None else torch.Generator(self.device).manual_seed(request.seed)
            samples.append(self.sample(request, kv, logits, shared if own is None else own))
            cached.append(hit)
        return GenerateOutput(samples, [len(r.prefix) for r in requests], cached)

    def forward(self, ids: list[int], kv: KV | None, start: int) -> tuple[KV, torch.Tensor]:
        cache = batch_cache(kv, 1)
        positions = torch.arange(start, start + len(ids), device=self.device).unsqueeze(0)
        ids = torch.tensor([ids], device=self.device)
        out = self.model(input_ids=ids, past_key_values=cache, position_ids=positions, use_cache=True)
        return as_kv(out.past_key_values), out.logits[0, -1]

    def prefill(self, prefix: tuple[int, ...]) -> tuple[KV, torch.Tensor, int]:
        """Key/values and next-token logits after `prefix`, computing only what the store lacks."""
        length, entry = self.kv.longest_prefix(prefix)
        if entry is not None and length == len(prefix) and entry.logits is not None:
            return entry.kv, entry.logits, length
        if entry is not None and length == len(prefix):
            length -= 1
        kv = crop(entry.kv, length) if entry is not None else None
        kv, logits = self.forward(list(prefix[length:]), kv, length)
        self.kv.put(prefix, Entry(kv, logits))
        return kv, logits, length

    def sample(self, request: SampleRequest, kv: KV, logits: torch.Tensor, generator: torch.Generator) -> list[Sample]:
        """Decode `n` rows in one batch until each hits EOS, the stop text or `max_tokens`."""
        n, position = request.n, len(request.prefix)
        cache = batch_cache(kv, n)
        logits = logits.expand(n, -1)
        rows: list[list[int]] = [[] for _ in range(n)]
        finish: list[str | None] = [None] * n
        live = list(range(n))
        for step in range(request.max_tokens):
            tokens = sample_tokens(logits, request.temperature, request.top_p, generator).tolist()
            for row, token in zip(live, tokens, strict=True):
                rows[row].append(token)
                if token in self.eos:
                    finish[row] = "eos"
                elif request.stop and request.stop in self.decode(rows[row][-max(8, len(request.stop)) :]):
                    finish[row] = "stop"
            keep = [i for i, row in enumerate(live) if finish[row] is None]
            if not keep or step == request.max_tokens - 1:
                break
            if len(keep) < len(live):
                self.store_finished(request.prefix, rows, live, keep, as_kv(cache))
                cache.batch_select_indices(torch.tensor(keep, device=self.device))
                live = [live[i] for i in keep]
            out = self.model(
                input_ids=torch.tensor([[rows[row][-1]] for row in live], device=self.device),
                past_key_values=cache,
                position_ids=torch.full((len(live), 1), position + step, device=self.device),
                use_cache=True,
            )
            cache, logits = out.past_key_values, out.logits[:, -1]
        return [Sample(ids, self.decode(ids), f or "length") for ids, f in zip(rows, finish, strict=True)]

    def store_finished(
        self, prefix: tuple[int, ...], rows: list[list[int]], live: list[int], keep: list[int], kv: KV
    ) -> None:
        """Rows leaving the batch keep their key/values (all but the last token) for their own children."""
        kept = set(keep)
        for i, row in enumerate(live):
            if i not in kept and len(rows[row]) > 1:
                ids = prefix + tuple(rows[row][:-1])
                self.kv.keep(ids, [(k[i : i + 1], v[i : i + 1]) for k, v in kv])
