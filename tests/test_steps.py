"""The one step splitter that search, PRM training data and RL rewards share."""

from __future__ import annotations

from tdrm_search.steps import split_steps, split_text

VOCAB = {1: "7 + 5", 2: " = 12", 3: "\n", 4: "\n", 5: "The answer", 6: " is 12.", 7: ".\n\nX", 8: "\n\n", 9: " "}


def decode(ids: list[int]) -> str:
    return "".join(VOCAB[i] for i in ids)


def test_split_steps_cuts_after_the_token_that_completes_the_delimiter():
    assert split_steps([1, 2, 3, 4, 5, 6], decode, "\n\n") == [[1, 2, 3, 4], [5, 6]]
    assert split_steps([1, 7, 6], decode, "\n\n") == [[1, 7], [6]]
    assert split_steps([], decode, "\n\n") == []


def test_blank_pieces_join_a_neighbour_and_no_token_is_lost():
    # a run of delimiters ends one step; a leading blank joins the first step; all-blank stays one piece
    assert split_steps([1, 8, 8, 8, 5, 6], decode, "\n\n") == [[1, 8, 8, 8], [5, 6]]
    assert split_steps([9, 8, 1, 8, 5], decode, "\n\n") == [[9, 8, 1, 8], [5]]
    assert split_steps([8, 8], decode, "\n\n") == [[8, 8]]


def test_text_and_token_ids_are_cut_alike():
    for ids in ([1, 8, 8, 8, 5, 6], [9, 8, 1, 8, 5], [1, 2, 3, 4, 5, 6], [8, 8]):
        assert split_text(decode(ids), "\n\n") == [decode(p) for p in split_steps(ids, decode, "\n\n")]
