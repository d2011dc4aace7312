"""A bounded store of key/value tensors for token-id prefixes, so children never recompute their parent.

Entries are evicted least-recently-used first once the stored tokens pass `max_tokens`. Tensors stay where the
model made them (its device and dtype): nothing here moves or copies them to the CPU, so a model on a GPU keeps its
store in GPU memory (`bytes` is what it holds there).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from transformers import DynamicCache

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values shaped [1, heads, tokens, head_dim]


@dataclass
class Entry:
    kv: KV
    logits: torch.Tensor | None  # next-token logits after the prefix, when known


def as_kv(cache: DynamicCache) -> KV:
    return [(layer.keys, layer.values) for layer in cache.layers]


def batch_cache(kv: KV | None, batch: int) -> DynamicCache:
    """A cache holding `kv` (one row) for each of `batch` rows, without copying; empty when `kv` is None."""
    if not kv:
        return DynamicCache()
    return DynamicCache(ddp_cache_data=[(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)) for k, v in kv])


def crop(kv: KV, length: int) -> KV:
    return [(k[:, :, :length], v[:, :, :length]) for k, v in kv]


class PrefixKVCache:
    def __init__(self, max_tokens: int):
        self.max_tokens = max_tokens
        self.entries: OrderedDict[tuple[int, ...], Entry] = OrderedDict()
        self.tokens = 0

    def put(self, ids: tuple[int, ...], entry: Entry) -> None:
        if ids in self.entries or len(ids) > self.max_tokens:
            return
        self.entries[ids] = entry
        self.tokens += len(ids)
        while self.tokens > self.max_tokens:
            old, _ = self.entries.popitem(last=False)
            self.tokens -= len(old)

    def keep(self, ids: tuple[int, ...], kv: KV) -> None:
        """Store a compact copy of `kv` cut to `ids`, copying nothing when the store has `ids` or cannot hold them
        (`kv` may be a view into a larger batch)."""
        if ids not in self.entries and len(ids) <= self.max_tokens:
            self.put(ids, Entry([(k.clone(), v.clone()) for k, v in crop(kv, len(ids))], None))

    def longest_prefix(self, ids: tuple[int, ...]) -> tuple[int, Entry | None]:
        """The longest stored prefix of `ids` (its length and entry), refreshed as recently used."""
        for length in sorted({len(k) for k in self.entries if len(k) <= len(ids)}, reverse=True):
            key = ids[:length]
            if key in self.entries:
                self.entries.move_to_end(key)
                return length, self.entries[key]
        return 0, None

    @property
    def bytes(self) -> int:
        return sum(t.numel() * t.element_size() for e in self.entries.values() for kv in e.kv for t in kv)
