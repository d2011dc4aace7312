"""The tree-token counts that search-cost ratios divide by, against counts made independently by hand."""

from __future__ import annotations

import pytest

from tdrm_search.cost import prm_tree_tokens
from tdrm_search.engine import search
from tdrm_search.prms.encoding import encode_path, step_text
from tdrm_search.prms.hf import HFPRM
from tdrm_search.tree import distinct_paths


@pytest.fixture(scope="module")
def tree_search(hf_lab_policy, lab_problems):
    def run(prm):
        return search(
            lab_problems[1], hf_lab_policy, prm, method="beam", n=8, beam_width=2, max_steps=4, temperature=2.0
        )

    return run


def trie_size(sequences) -> int:
    return len({tuple(ids[:k]) for ids in sequences for k in range(1, len(ids) + 1)})


def test_tag_head_counts_the_prompt_once_and_each_distinct_step_once(tree_search, random_prm_dir):
    prm = HFPRM(random_prm_dir)
    result = tree_search(prm)
    paths = distinct_paths(result.tree)
    question = result.problem.question
    prompt = len(encode_path(prm.tokenizer, prm.config, question, ()).ids)
    last_steps = sum(len(prm.tokenizer.encode(step_text(prm.config, p[-1], len(p) - 1))) for p in paths)
    whole = [encode_path(prm.tokenizer, prm.config, question, p).ids for p in paths]
    assert len(paths) > max(map(len, paths))  # a branching tree, not one path
    assert prm_tree_tokens(prm, result) == (prompt + last_steps, trie_size(whole))


def test_value_head_counts_each_step_and_its_own_end_of_turn(tree_search, value_prm_dir):
    prm = HFPRM(value_prm_dir)
    result = tree_search(prm)
    paths = distinct_paths(result.tree)
    tok = prm.tokenizer
    prompt = tok.apply_chat_template([{"role": "user", "content": result.problem.question}], tokenize=False)
    prompt += "<|im_start|>assistant\n"
    end_of_turn = len(tok.encode("<|im_end|>\n"))
    steps = sum(len(tok.encode(("\n\n" if len(p) > 1 else "") + p[-1].strip())) + end_of_turn for p in paths)
    unique, trie = prm_tree_tokens(prm, result)
    assert unique == len(tok.encode(prompt)) + steps
    assert trie < unique + end_of_turn * len(paths)  # siblings' shared words counted once
