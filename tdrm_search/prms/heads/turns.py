"""The turns head (RLHFlow's PRMs): the chat template renders each step as a user turn (the first one the question,
formatted by `prompt_template`, then the step), each answered by the assistant with `step_tag` ("+"). A step's value
is P(good) / (P(good) + P(bad)) of the assistant's answer, read at the last token of the generation prompt before it
(RLHFlow's model card reads logits[-3] of the conversation ending "+<|eot_id|>": the same position). The whole path
is one sequence whose ids are a prefix of its extensions', so stores and the prefix cache serve siblings; on vLLM
one `max_tokens=1` request per new step, like the LM head."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from tdrm_search.prms.encoding import SENTINEL, EncodedPath
from tdrm_search.prms.heads.lm import LMHead

if TYPE_CHECKING:
    from tdrm_search.prms.config import PRMConfig


@dataclass
class TurnsHead(LMHead):
    name: ClassVar[str] = "turns"
    trainable: ClassVar[bool] = False  # scoring only: prm_train's packing is untested on turn-rendered paths
    remote_read: ClassVar[str | None] = None  # not served over HTTP (untested there)

    @classmethod
    def check_config(cls, config: PRMConfig) -> None:
        super().check_config(config)
        if "{question}" not in config.prompt_template:
            raise ValueError(
                "PRM config: a 'turns' head writes the question into the first user turn; prompt_template must "
                "contain '{question}' (e.g. '{question} ')"
            )

    def check_format(self, where: str) -> None:
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(f"{where}: a 'turns' PRM renders its steps with the chat template; the tokenizer has none")

    def check_model(self, model) -> None:
        """The answer need not be one token; good and bad must be (checked when bound)."""

    def messages(self, question: str, steps: Sequence[str]) -> list[dict]:
        system = [{"role": "system", "content": self.config.system_prompt}] if self.config.system_prompt else []
        out = list(system)
        for k, step in enumerate(steps):
            head = self.config.prompt_template.format(question=question) if k == 0 else ""
            out += [
                {"role": "user", "content": head + step.strip()},
                {"role": "assistant", "content": self.config.step_tag},
            ]
        return out

    def render(self, messages: list[dict], generation_prompt: bool) -> list[int]:
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=False)
        return self.tokenizer.encode(text, add_special_tokens=False)

    def encode(
        self, question: str, steps: Sequence[str], start: int = 0, max_len: int | None = None
    ) -> list[EncodedPath]:
        messages = self.messages(question, steps)
        ids = self.render(messages, False) if steps else self.prompt_ids(question)
        ends = []
        for k in range(len(steps)):
            before = self.render(messages[: len(messages) - 2 * (len(steps) - k) + 1], True)
            if ids[: len(before)] != before:
                raise ValueError(
                    "a 'turns' PRM needs a chat template that renders a conversation as a prefix of its longer "
                    "conversations (with the generation prompt before each assistant answer)"
                )
            ends.append(len(before) - 1)
        path = EncodedPath(ids, ends, prompt=len(self.prompt_ids(question)))
        if max_len:
            path = path.fit(max_len, repr(question[:40]))
        return [EncodedPath(path.ids, path.ends[start:], prompt=path.prompt)]

    def prompt_ids(self, question: str) -> list[int]:
        """The ids before the first step: the conversation up to the question in the first user turn."""
        system = [{"role": "system", "content": self.config.system_prompt}] if self.config.system_prompt else []
        first = self.config.prompt_template.format(question=question) + SENTINEL
        text = self.tokenizer.apply_chat_template(
            [*system, {"role": "user", "content": first}], add_generation_prompt=False, tokenize=False
        )
        return self.tokenizer.encode(text.split(SENTINEL)[0], add_special_tokens=False)
