"""What a search's PRM cost is measured against: the tree's tokens in the PRM's own encoding."""

from __future__ import annotations

from tdrm_search.prms.encoding import common_length, conversation_parts, encode_path, encode_reads
from tdrm_search.tree import distinct_paths
from tdrm_search.types import SearchResult


def prm_tree_tokens(prm, result: SearchResult) -> tuple[int, int]:
    """(unique, trie) tokens of a search tree as `prm` encodes it; (0, 0) for a PRM without a tokenizer.

    Unique: the question's prompt once, then for every distinct path (siblings that sampled the same text are one
    path, scored once) the tokens past what it shares with its parent's sequence: its step, and for the value
    head its own end-of-turn. Trie: every scored sequence with common leading tokens counted once (siblings'
    shared words too), the floor for a token-granular cache."""
    if not hasattr(prm, "tokenizer"):
        return 0, 0
    question = result.problem.question
    rows = {
        steps: encode_reads(prm.tokenizer, prm.config, question, steps, len(steps) - 1)[-1]
        for steps in distinct_paths(result.tree)
    }
    prompt = prompt_ids(prm, question)
    unique, root, trie = len(prompt), {}, 0
    for steps, row in rows.items():
        parent = list(rows[steps[:-1]].prefix) if len(steps) > 1 else prompt
        unique += len(row.ids) - common_length([row.ids, parent])
        node = root
        for token in row.ids:
            if token not in node:
                node[token], trie = {}, trie + 1
            node = node[token]
    return unique, trie


def prompt_ids(prm, question: str) -> list[int]:
    """The ids every sequence of the question starts with, before its first step."""
    if prm.config.head == "value":
        return prm.tokenizer(conversation_parts(prm.tokenizer, prm.config, question)[0])["input_ids"]
    return encode_path(prm.tokenizer, prm.config, question, ()).ids
