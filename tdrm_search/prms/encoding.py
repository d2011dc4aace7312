"""Turn (question, steps) into the token sequences a PRM runs and the positions it reads values at; each head
(`prms/heads/`) picks its encoding from these.

Tag heads (and the likelihood head, with an empty tag): one sequence per path, one segment per step tokenised
separately and concatenated, so the ids of a path are a prefix of the ids of its extensions, read at each step tag.
The value head: one sequence per step, the conversation [user: question, assistant: steps so far] rendered
as text and tokenised whole with the tokenizer's defaults, exactly as TDRM's trainer feeds its scalar PRMs
(a template that writes the BOS token itself then gets a second one, as it did in training), read at its last
token. A step's sequence shares the conversation up to the end of its steps with its extensions' sequences;
only the end-of-turn tokens after them are its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from tdrm_search.prms.config import PRMConfig

log = logging.getLogger(__name__)


SENTINEL = "\x00tdrm-assistant\x00"


@dataclass
class EncodedPath:
    ids: list[int]
    ends: list[int]  # positions whose values are read, in step order (tag heads: each step's tag)
    shared: int | None = None  # leading ids the sequences of extensions share (None: all of them)
    prompt: int = 0  # ids before the first step (one sequence per path)

    @property
    def prefix(self) -> tuple[int, ...]:
        """The ids a prefix store keeps for this sequence's extensions."""
        return tuple(self.ids if self.shared is None else self.ids[: self.shared])

    def fit(self, max_len: int, name: str) -> EncodedPath:
        """The path cut to the PRM's context. Steps whose tag falls beyond it cannot be read out: callers
        give them value 0 (an over-long solution is a failed one), and we say so in the log."""
        if len(self.ids) <= max_len:
            return self
        log.warning("PRM context is %d tokens; steps of %s past it get value 0", max_len, name)
        return EncodedPath(self.ids[:max_len], [e for e in self.ends if e < max_len], prompt=self.prompt)


def chat(tokenizer, config: PRMConfig, question: str, answer: str | None = None) -> str:
    """The chat template rendered: with the generation prompt, or with `answer` as the closed assistant turn."""
    messages = [{"role": "user", "content": question}]
    if config.system_prompt:
        messages.insert(0, {"role": "system", "content": config.system_prompt})
    if answer is None:
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    messages.append({"role": "assistant", "content": answer})
    return tokenizer.apply_chat_template(messages, add_generation_prompt=False, tokenize=False)


def prompt_text(tokenizer, config: PRMConfig, question: str) -> str:
    if config.prompt_template != "chat":
        return config.prompt_template.format(question=question)
    return chat(tokenizer, config, question)


def conversation_parts(tokenizer, config: PRMConfig, question: str) -> tuple[str, str]:
    """The value head's text before and after the assistant's content."""
    if config.prompt_template != "chat":
        return config.prompt_template.format(question=question), ""
    before, *after = chat(tokenizer, config, question, SENTINEL).split(SENTINEL)
    if len(after) != 1:
        raise ValueError(
            "the chat template does not write the assistant's reply exactly once; a 'value' PRM "
            "needs a template that renders the assistant turn"
        )
    return before, after[0]


def step_text(config: PRMConfig, step: str, index: int) -> str:
    return (config.step_join if index else "") + step.strip() + config.step_tag


def encode_path(
    tokenizer, config: PRMConfig, question: str, steps: list[str] | tuple[str, ...], max_len: int | None = None
) -> EncodedPath:
    """A tag head's token ids of the whole path and the read-out position of every step (cut to `max_len`)."""
    chat = config.prompt_template == "chat"
    ids = tokenizer.encode(prompt_text(tokenizer, config, question), add_special_tokens=not chat)
    prompt, ends = len(ids), []
    for k, step in enumerate(steps):
        ids = ids + tokenizer.encode(step_text(config, step, k), add_special_tokens=False)
        ends.append(len(ids) - 1)
    path = EncodedPath(ids, ends, prompt=prompt)
    return path.fit(max_len, repr(question[:40])) if max_len else path


def encode_values(
    tokenizer,
    config: PRMConfig,
    question: str,
    steps: list[str] | tuple[str, ...],
    start: int = 0,
    max_len: int | None = None,
) -> list[EncodedPath]:
    """The value head's sequences for steps[start:], one per step, each read at its last token; a sequence
    longer than `max_len` and all after it are left out (their steps get value 0)."""
    before, after = conversation_parts(tokenizer, config, question)
    texts = [step.strip() for step in steps]
    out = []
    for k in range(start, len(steps)):
        body = before + config.step_join.join(texts[: k + 1])
        ids = tokenizer(body + after)["input_ids"]
        if max_len and len(ids) > max_len:
            log.warning("PRM context is %d tokens; steps of %r past it get value 0", max_len, question[:40])
            break
        out.append(EncodedPath(ids, [len(ids) - 1], common_length([ids, tokenizer(body)["input_ids"]])))
    return out


def common_length(rows: list[list[int]]) -> int:
    """Length of the longest prefix all rows share."""
    shortest = min(map(len, rows))
    return next((i for i in range(shortest) if len({row[i] for row in rows}) > 1), shortest)


def pad_values(values: list[float], steps: int) -> list[float]:
    """Values of the steps that fit the context, then 0 for those that did not."""
    return values + [0.0] * (steps - len(values))


def single_token_id(tokenizer, token: str, role: str) -> int:
    """The id of a token the read-out needs; a clear error when the tokenizer splits or lacks it."""
    ids = tokenizer.encode(token, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"PRM {role} {token!r} is {len(ids)} tokens in this tokenizer; it must be exactly one")
    return ids[0]


def right_pad(paths: list[list[int]], pad: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    width = max(map(len, paths))
    ids = torch.full((len(paths), width), pad, dtype=torch.long)
    mask = torch.zeros((len(paths), width), dtype=torch.long)
    for i, p in enumerate(paths):
        ids[i, : len(p)] = torch.tensor(p)
        mask[i, : len(p)] = 1
    return (ids, mask) if device is None else (ids.to(device), mask.to(device))  # built on the CPU, moved once
