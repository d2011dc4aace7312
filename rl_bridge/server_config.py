"""The reward server's limits and options: plain data, light to import (the command line builds its flags from
it without loading the web stack)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ServerConfig:
    """Limits and options. `token`: require "Authorization: Bearer <token>" when set."""

    token: str | None = None
    max_body_bytes: int = field(default=8 * 2**20, metadata={"help": "largest request body accepted"})
    max_items: int = field(default=1024, metadata={"help": "most items in one request"})
    max_batch: int = field(default=256, metadata={"help": "most items scored in one PRM call"})
    batch_window_s: float = field(default=0.005, metadata={"help": "how long a batch waits for more requests"})
    neutral: float = field(default=0.0, metadata={"help": "reward of an item that cannot be scored"})
    prompt_template: str | None = field(
        default=None, metadata={"help": 'recover the question from prompts, e.g. "Q: {question}\\nA:\\n"'}
    )
