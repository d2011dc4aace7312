"""What a search's PRM cost is measured against: the tree's tokens in the PRM's own encoding."""

from __future__ import annotations

from tdrm_search.prms.encoding import common_length
from tdrm_search.tree import distinct_paths
from tdrm_search.types import SearchResult


def prm_tree_tokens(prm, result: SearchResult) -> tuple[int, int]:
    """(unique, trie) tokens of a search tree as `prm`'s head encodes it; (0, 0) for a PRM without one (the oracle).

    Unique: the question's prompt once, then for every distinct path (siblings that sampled the same text are one
    path, scored once) the tokens past what it shares with its parent's sequence: its step, and for the value
    head its own end-of-turn. Trie: every scored sequence with common leading tokens counted once (siblings'
    shared words too), the floor for a token-granular cache. A head that writes before it reads (the generative
    head's critique and verdict prompt, `tokens_after`) adds at most that many per distinct path to both."""
    if not hasattr(prm, "head"):
        return 0, 0
    question = result.problem.question
    rows = {steps: prm.head.encode(question, steps, len(steps) - 1)[-1] for steps in distinct_paths(result.tree)}
    prompt = prm.head.prompt_ids(question)
    unique, root, trie = len(prompt), {}, 0
    for steps, row in rows.items():
        parent = list(rows[steps[:-1]].prefix) if len(steps) > 1 else prompt
        unique += len(row.ids) - common_length([row.ids, parent])
        node = root
        for token in row.ids:
            if token not in node:
                node[token], trie = {}, trie + 1
            node = node[token]
    extra = prm.head.tokens_after() * len(rows)
    return unique + extra, trie + extra
