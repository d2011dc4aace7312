"""The one step splitter. Search (the expansion step), PRM training data (`prm_train.collect`) and RL rewards
(`rl_bridge.reward`) all cut a solution into steps here, so a PRM meets at search time the steps it was trained on.

A step ends with the delimiter (kept with the step it ends). A white-space-only piece is no step of its own: it
joins the step before it (a run of delimiters ends one step), or, at the start, the step after it. Text that is
blank throughout stays one blank piece, so no token is ever dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TypeVar

Piece = TypeVar("Piece", list[int], str)


def split_steps(token_ids: list[int], decode: Callable[[list[int]], str], delimiter: str) -> list[list[int]]:
    """Generated ids cut after each token that completes a delimiter, so steps stay aligned with token ids."""
    if single_step(token_ids, decode, delimiter):
        return [token_ids] if token_ids else []
    window = max(8, len(delimiter))
    pieces, start = [], 0
    for i in range(len(token_ids)):
        if delimiter in decode(token_ids[max(start, i + 1 - window) : i + 1]):
            pieces.append(token_ids[start : i + 1])
            start = i + 1
    if start < len(token_ids):
        pieces.append(token_ids[start:])
    return merge_blank(pieces, [decode(p) for p in pieces])[0]


def split_text(text: str, delimiter: str) -> list[str]:
    """The same cut on text alone (no token ids at hand)."""
    pieces = [t for t in re.split(f"(?<={re.escape(delimiter)})", text) if t]
    return merge_blank(pieces, pieces)[0]


def single_step(token_ids: list[int], decode: Callable[[list[int]], str], delimiter: str) -> bool:
    """True when the ids are one step whole (the usual step-wise sample), found with two decodes."""
    text = decode(token_ids)
    count = text.count(delimiter)
    return count == 0 or (count == 1 and text.endswith(delimiter) and delimiter not in decode(token_ids[:-1]))


def merge_blank(pieces: Sequence[Piece], texts: Sequence[str]) -> tuple[list[Piece], list[str]]:
    """Fold white-space-only pieces into a neighbour: the piece before, or for leading ones the piece after."""
    out_pieces: list[Piece] = []
    out_texts: list[str] = []
    for piece, text in zip(pieces, texts, strict=True):
        if out_texts and not (text.strip() and out_texts[-1].strip()):
            out_pieces[-1], out_texts[-1] = out_pieces[-1] + piece, out_texts[-1] + text
        else:
            out_pieces.append(piece)
            out_texts.append(text)
    return out_pieces, out_texts
