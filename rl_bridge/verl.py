"""verl adapters: a scalar `compute_score` for `custom_reward_function`, and a reward manager that writes
per-token process rewards into verl's `token_level_scores`.

compute_score (scalar; any verl reward manager, GRPO included):
    custom_reward_function.path=rl_bridge/verl.py custom_reward_function.name=compute_score
    +custom_reward_function.reward_kwargs.mode=mix +custom_reward_function.reward_kwargs.prm=PATH

TDRMRewardManager (per token; PPO with a critic, where clip/delta do their work): see rl_bridge/README.md for
the settings (`reward_model.enable=False`, so verl's own RM worker does not pre-empt the rule reward).
verl is an optional dependency: nothing here imports it except to register the manager when it is installed.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from typing import Any

import torch

from rl_bridge.reward import RewardConfig, RewardFunction, RewardItem, question_from_prompt
from rl_bridge.trl import as_meta

log = logging.getLogger(__name__)

OPTIONS = {f.name for f in dataclasses.fields(RewardConfig)} | {"prm", "backend"}  # what RewardFunction.load takes
NEUTRAL = 0.0  # what an abstaining item (no reference, invalid PRM values) gets where a float is required


@functools.lru_cache(maxsize=8)
def _cached(options: str) -> RewardFunction:
    return RewardFunction.load(**json.loads(options))


def reward_function(**options: Any) -> RewardFunction:
    """One RewardFunction per distinct options (prm, backend and RewardConfig fields), built once per process."""
    return _cached(json.dumps(options, sort_keys=True))


def question_of(extra_info: Any, fallback: str) -> str:
    return str(extra_info["question"]) if isinstance(extra_info, dict) and extra_info.get("question") else fallback


def compute_score(
    data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None, **kwargs: Any
) -> dict[str, float]:
    """verl's custom reward signature. kwargs (verl's `reward_kwargs`) configure the RewardFunction. The PRM
    sees `extra_info["question"]` (verl's math preprocessing stores it) and `extra_info["meta"]` when present."""
    fn = reward_function(**kwargs)
    item = RewardItem(
        question_of(extra_info, ""),
        solution_str or "",
        None if ground_truth is None else str(ground_truth),
        meta=as_meta((extra_info or {}).get("meta")),
    )
    out = fn.score([item])[0]
    if out.error:
        log.warning("%s: reward %s for this item: %s", data_source, NEUTRAL, out.error)
    return {
        "score": NEUTRAL if out.reward is None else out.reward,
        "acc": 0.0 if out.rule is None else float(out.rule == fn.config.correct),
        "prm": -1.0 if out.prm is None else out.prm,
    }


class TDRMRewardManager:
    """A verl reward manager: `__call__(data, return_dict)` -> reward tensor (batch x response length).

    Each step's reward goes at the token where the step ends; the success (rule) reward at the last step.
    Reads `data.batch["prompts" | "responses" | "attention_mask"]` and `data.non_tensor_batch["reward_model"][i]
    ["ground_truth"]`, `[reward_fn_key][i]`, `["extra_info"][i]`. `compute_score` is accepted for verl's loader
    but unused: the rule reward is the engine's grader.
    """

    def __init__(
        self,
        tokenizer: Any,
        num_examine: int = 0,
        compute_score: Any = None,
        reward_fn_key: str = "data_source",
        reward_fn: RewardFunction | None = None,
        prompt_template: str | None = None,
        **reward_kwargs: Any,
    ):
        self.tokenizer, self.num_examine, self.reward_fn_key = tokenizer, num_examine, reward_fn_key
        options = {k: v for k, v in reward_kwargs.items() if k in OPTIONS}
        if set(reward_kwargs) - OPTIONS:  # verl versions pass extras (processor, max_resp_len, overlong_buffer_cfg)
            log.info("TDRMRewardManager ignores %s", sorted(set(reward_kwargs) - OPTIONS))
        self.reward_fn = reward_fn or reward_function(**options)
        self.prompt_template = prompt_template

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def items(self, data: Any) -> tuple[list[RewardItem], list[int]]:
        """The batch's completions (with token ids) and each response's valid length."""
        prompts, responses, mask = data.batch["prompts"], data.batch["responses"], data.batch["attention_mask"]
        width = prompts.shape[-1]
        extra = data.non_tensor_batch.get("extra_info")
        items, lengths = [], []
        for i in range(len(data)):
            prompt_len, length = int(mask[i, :width].sum()), int(mask[i, width:].sum())
            ids = responses[i, :length].tolist()
            info = extra[i] if extra is not None else None
            prompt = self.decode(prompts[i, width - prompt_len :].tolist())
            truth = data.non_tensor_batch["reward_model"][i].get("ground_truth")
            items.append(
                RewardItem(
                    question=question_of(info, question_from_prompt(prompt, self.prompt_template)),
                    completion=self.decode(ids),
                    reference=None if truth is None else str(truth),
                    completion_ids=ids,
                    meta=as_meta(info.get("meta")) if isinstance(info, dict) else {},
                )
            )
            lengths.append(length)
        return items, lengths

    def __call__(self, data: Any, return_dict: bool = False) -> torch.Tensor | dict[str, Any]:
        items, lengths = self.items(data)
        outs = self.reward_fn.score(items, decode=self.decode)
        scores = torch.zeros_like(data.batch["responses"], dtype=torch.float32)
        extra: dict[str, list] = {"score": [], "acc": [], "prm": [], "abstain": []}
        for i, (out, length) in enumerate(zip(outs, lengths, strict=True)):
            last = max(length - 1, 0)
            if out.reward is None or not out.step_rewards:
                scores[i, last] = NEUTRAL if out.reward is None else out.reward
            else:
                for end, value in zip(out.token_ends, out.step_rewards, strict=True):
                    scores[i, min(end, last)] += value
            extra["score"].append(NEUTRAL if out.reward is None else out.reward)
            extra["acc"].append(0.0 if out.rule is None else float(out.rule == self.reward_fn.config.correct))
            extra["prm"].append(-1.0 if out.prm is None else out.prm)
            extra["abstain"].append(float(out.reward is None))
            if i < self.num_examine:
                print("[response]", items[i].completion, "[ground_truth]", items[i].reference, "[reward]", out.reward)
        return {"reward_tensor": scores, "reward_extra_info": extra} if return_dict else scores


try:  # register under reward_model.reward_manager=tdrm when verl is installed
    from verl.workers.reward_manager import register
except ImportError:
    pass
else:
    TDRMRewardManager = register("tdrm")(TDRMRewardManager)
