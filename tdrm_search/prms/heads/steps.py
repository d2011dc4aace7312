"""Tag-head encodings beyond `encoding.encode_path`: a step tag tokenised apart from its step (`split_tag`, as
Skywork's PRM code and TRL's PRMTrainer build their inputs: the step's ids, then the tag's ids) and a prompt template
that writes the tokenizer's BOS token (`{bos}`, Skywork's `bos_token + problem + "\\n"`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tdrm_search.prms.encoding import EncodedPath, encode_path, prompt_text

if TYPE_CHECKING:
    from tdrm_search.prms.config import PRMConfig


def encode_steps(
    tokenizer, config: PRMConfig, question: str, steps: Sequence[str], max_len: int | None = None
) -> EncodedPath:
    """One sequence for the whole path, read at each step tag's last token (cut to `max_len`)."""
    if not config.split_tag and "{bos}" not in config.prompt_template:
        return encode_path(tokenizer, config, question, tuple(steps), max_len)
    chat = config.prompt_template == "chat"
    if chat:
        prompt = prompt_text(tokenizer, config, question)
    else:
        prompt = config.prompt_template.format(question=question, bos=tokenizer.bos_token or "")
    ids = tokenizer.encode(prompt, add_special_tokens=not chat)
    tag = tokenizer.encode(config.step_tag, add_special_tokens=False) if config.step_tag else []
    if config.split_tag and not tag:
        raise ValueError("PRM config: split_tag needs a step_tag")
    start, ends = len(ids), []
    for k, step in enumerate(steps):
        text = (config.step_join if k else "") + step.strip()
        if not config.split_tag:
            text += config.step_tag
        ids = ids + tokenizer.encode(text, add_special_tokens=False) + (tag if config.split_tag else [])
        ends.append(len(ids) - 1)
    path = EncodedPath(ids, ends, prompt=start)
    return path.fit(max_len, repr(question[:40])) if max_len else path
