"""TRL adapter: `GRPOTrainer(reward_funcs=[TRLReward(fn)])`, or `AsyncTRLReward(fn)` for TRL's async path.

TRL calls `f(prompts=..., completions=..., completion_ids=..., **kwargs)`, kwargs holding every dataset column
(one value per completion) plus `trainer_state`, `log_extra` and `log_metric`; it wants one float or None
(abstain: the completion gets no advantage) per completion. GRPO takes one scalar per completion, so only the
trajectory sum reaches it: under delta that is the success reward plus the first step's value, under clip a
penalty for low-scored steps (see rl_bridge/README.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

from rl_bridge.reward import RewardFunction, RewardItem, RewardOutput, question_from_prompt

log = logging.getLogger(__name__)


def message_text(value: Any, role: str) -> str:
    """Plain text of a prompt or completion: a string as is; for a conversation, the last `role` message."""
    if isinstance(value, str):
        return value
    contents = [m.get("content") or "" for m in value or [] if isinstance(m, dict) and m.get("role") == role]
    return contents[-1] if contents else ""


def as_meta(value: Any) -> dict[str, Any]:
    """A problem's metadata from a dataset column: a dict, a JSON object string, or nothing."""
    if isinstance(value, str) and value:
        value = json.loads(value)
    return dict(value) if isinstance(value, dict) else {}


class TRLReward:
    """A TRL reward function backed by a `RewardFunction`.

    answer_column: the dataset column with the reference answer (missing: every completion abstains).
    question_column: a column with the plain question for the PRM; else the last user message of a
        conversational prompt, or a text prompt cut down with `prompt_template` (e.g. "Q: {question}\\nA:\\n").
    meta_column: a column with the problem's checker metadata (dict or JSON string), for the oracle PRM.
    """

    def __init__(
        self,
        reward_fn: RewardFunction,
        answer_column: str = "answer",
        question_column: str | None = None,
        meta_column: str | None = None,
        prompt_template: str | None = None,
        name: str = "tdrm_reward",
    ):
        self.reward_fn, self.answer_column = reward_fn, answer_column
        self.question_column, self.meta_column, self.prompt_template = question_column, meta_column, prompt_template
        self.__name__ = name  # TRL logs rewards under the function's name

    def items(self, prompts: Sequence[Any], completions: Sequence[Any], columns: dict[str, Any]) -> list[RewardItem]:
        if self.answer_column not in columns:
            log.warning("no %r column among %s: every completion abstains", self.answer_column, sorted(columns))
        n = len(completions)
        answers = columns.get(self.answer_column) or [None] * n
        questions = columns.get(self.question_column) if self.question_column else None
        metas = columns.get(self.meta_column) if self.meta_column else None
        return [
            RewardItem(
                question=questions[i]
                if questions
                else question_from_prompt(message_text(prompts[i], "user"), self.prompt_template),
                completion=message_text(completions[i], "assistant"),
                reference=None if answers[i] is None else str(answers[i]),
                meta=as_meta(metas[i]) if metas else {},
            )
            for i in range(n)
        ]

    def reward(self, prompts: Sequence[Any], completions: Sequence[Any], columns: dict[str, Any]) -> list[float | None]:
        outs = self.reward_fn.score(self.items(prompts, completions, columns))
        self.log(outs, columns)
        return [self.trajectory_reward(o) for o in outs]

    def trajectory_reward(self, out: RewardOutput) -> float | None:
        """The number the trainer gets for one scored completion: its reward (a subclass may pay another)."""
        return out.reward

    def log(self, outs: list[RewardOutput], columns: dict[str, Any]) -> None:
        """Batch means of the rule and PRM parts, and the abstention rate, as trainer metrics."""
        log_metric = columns.get("log_metric")
        if not callable(log_metric) or not outs:
            return
        for name, values in (("rule", [o.rule for o in outs]), ("prm", [o.prm for o in outs])):
            present = [v for v in values if v is not None]
            if present:
                log_metric(f"{self.__name__}/{name}", sum(present) / len(present))
        log_metric(f"{self.__name__}/abstain", sum(o.reward is None for o in outs) / len(outs))

    def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Any = None, **kwargs: Any
    ) -> list[float | None]:
        return self.reward(prompts, completions, kwargs)


class AsyncTRLReward(TRLReward):
    """The same reward as a coroutine: TRL awaits it on its event-loop thread; the work runs in a worker thread
    (nothing in the path uses signals, so no thread needs to be the main one)."""

    async def __call__(
        self, prompts: Sequence[Any], completions: Sequence[Any], completion_ids: Any = None, **kwargs: Any
    ) -> list[float | None]:
        return await asyncio.to_thread(self.reward, prompts, completions, kwargs)
