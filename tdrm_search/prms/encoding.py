"""Turn (question, steps) into PRM token ids, one segment per step, and find each step's read-out position.

Segments are tokenised separately and concatenated, so the ids of a path are a prefix of the ids of its
extensions: that keeps every backend's prefix cache valid across steps.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tdrm_search.prms.config import PRMConfig


log = logging.getLogger(__name__)


@dataclass
class EncodedPath:
    ids: list[int]
    ends: list[int]  # ends[k]: index of the last token of step k's segment (its step tag)

    def fit(self, max_len: int, name: str) -> EncodedPath:
        """The path cut to the PRM's context. Steps whose tag falls beyond it cannot be read out: callers
        give them value 0 (an over-long solution is a failed one), and we say so in the log."""
        if len(self.ids) <= max_len:
            return self
        log.warning("PRM context is %d tokens; steps of %s past it get value 0", max_len, name)
        return EncodedPath(self.ids[:max_len], [e for e in self.ends if e < max_len])


def prompt_text(tokenizer, config: PRMConfig, question: str) -> str:
    if config.prompt_template != "chat":
        return config.prompt_template.format(question=question)
    messages = [{"role": "user", "content": question}]
    if config.system_prompt:
        messages.insert(0, {"role": "system", "content": config.system_prompt})
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def step_text(config: PRMConfig, step: str, index: int) -> str:
    return (config.step_join if index else "") + step.strip() + config.step_tag


def encode_path(tokenizer, config: PRMConfig, question: str, steps: list[str] | tuple[str, ...],
                max_len: int | None = None) -> EncodedPath:
    """Token ids of the whole path and the read-out position of every step (cut to `max_len` if given)."""
    chat = config.prompt_template == "chat"
    ids = tokenizer.encode(prompt_text(tokenizer, config, question), add_special_tokens=not chat)
    ends = []
    for k, step in enumerate(steps):
        ids = ids + tokenizer.encode(step_text(config, step, k), add_special_tokens=False)
        ends.append(len(ids) - 1)
    path = EncodedPath(ids, ends)
    return path.fit(max_len, repr(question[:40])) if max_len else path


def pad_values(values: list[float], steps: int) -> list[float]:
    """Values of the steps that fit the context, then 0 for those that did not."""
    return values + [0.0] * (steps - len(values))


def single_token_id(tokenizer, token: str, role: str) -> int:
    """The id of a token the read-out needs; a clear error when the tokenizer splits or lacks it."""
    ids = tokenizer.encode(token, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"PRM {role} {token!r} is {len(ids)} tokens in this tokenizer; it must be exactly one")
    return ids[0]
