"""GRPO on the lab task with rl_bridge rewards: the runs `benchmarks/rl_lab.py` compares (issues 18 and 32).

Every run starts from a given policy (default: the shipped lab policy) and trains with TRL's GRPOTrainer on CPU
on the same prompts in the same order (step s's prompts are the lab problems of training seed `train_seed(s)`);
only the reward differs. The rewards are rl_bridge's TRL adapter over `RewardFunction`, plus the naive summed PRM
return of arXiv 2410.15115 (`RawSumReward`, for the hacking comparison). GRPO takes one scalar per completion:
clip / delta / clip-delta reach it as the sum of their per-step rewards (rl_bridge/README.md). The hacking probe
(`probe`: steps, tokens, the repeated/unnecessary-step share and reward per step) reads greedy held-out solutions
(`evaluate`) and every training batch (`Probed`, logged as `probe/<measure>`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean

import torch

from rl_bridge.hacking import raw_sum
from rl_bridge.reward import RewardConfig, RewardFunction, RewardOutput
from rl_bridge.trl import TRLReward, as_meta, message_text
from tdrm_search.loading import LAB_POLICY
from tdrm_search.prms.base import PRM
from tdrm_search.steps import split_text
from tdrm_search.tasks.lab import STEP_DELIMITER, generate_problems, grade, train_seed
from tdrm_search.types import Problem

REWARDS = ("rule", "raw_prm", "rule_raw_prm", "clip", "delta", "clip_delta", "mix_td", "mix_mc")


@dataclass(frozen=True)
class Setting:
    """What every run of the comparison shares: GRPO's settings and the held-out evaluation."""

    steps: int = 40
    batch: int = 32  # completions per optimiser step
    generations: int = 8  # completions per prompt (GRPO's group)
    max_tokens: int = 192  # a 5-operation solution is about 110 tokens: room to pad
    lr: float = 1e-3  # at 2e-4 no greedy solution changed in --quick; 1e-3 checked on development seed 999 only
    temperature: float = 1.0
    num_ops: int = 5
    eval_problems: int = 100
    eval_seed: int = 4242
    eval_every: int = 8

    @property
    def prompts_per_step(self) -> int:
        return self.batch // self.generations


class RawSumReward(TRLReward):
    """The naive return of 2410.15115: the PRM's step values summed (plus the rule reward with `rule=True`)."""

    def __init__(self, reward_fn: RewardFunction, rule: bool, **kwargs):
        super().__init__(reward_fn, **kwargs)
        self.rule = rule

    def trajectory_reward(self, out: RewardOutput) -> float | None:
        return raw_sum(out, self.rule)


def make_reward(name: str, prms: dict[str, PRM]) -> TRLReward:
    """The TRL reward function called `name` (one of REWARDS), on rl_bridge's RewardFunction."""
    prm = prms["mc"] if name == "mix_mc" else prms.get("td")

    def function(mode: str) -> RewardFunction:
        return RewardFunction(RewardConfig(mode=mode, grade_timeout_s=None), prm if mode != "rule" else None)

    if name in ("raw_prm", "rule_raw_prm"):
        return RawSumReward(function("mix"), rule=name == "rule_raw_prm", name=name)
    return TRLReward(function("mix" if name.startswith("mix") else name), name=name)


def dataset(problems: list[Problem]):
    """GRPO's training set: the lab's chat prompt, the reference answer, the checker metadata (JSON)."""
    from datasets import Dataset

    return Dataset.from_list(
        [
            {"prompt": [{"role": "user", "content": p.question}], "answer": p.answer, "meta": json.dumps(p.meta)}
            for p in problems
        ]
    )


def train_problems(setting: Setting) -> list[Problem]:
    """Step s's prompts are the lab problems of training seed `train_seed(s)`: every run sees the same ones in order."""
    return [
        p
        for step in range(setting.steps)
        for p in generate_problems(setting.prompts_per_step, seed=train_seed(step), num_ops=setting.num_ops)
    ]


def solution_stats(problem: Problem, text: str) -> dict[str, float]:
    """A solution's steps (non-blank pieces between blank lines), and whether it has a repeated step (the same text
    as an earlier step) or an unnecessary one (more steps than the problem's operations plus the answer line)."""
    steps = [s.strip() for s in split_text(text, STEP_DELIMITER) if s.strip()]
    repeated = len(set(steps)) < len(steps)
    extra = len(steps) > len(problem.meta["ops"]) + 1
    return {"correct": float(grade(problem, text)), "steps": len(steps), "repeat": float(repeated or extra)}


def grpo_args(setting: Setting, seed: int, output_dir: str, **overrides):
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=output_dir,
        max_steps=setting.steps,
        per_device_train_batch_size=setting.batch,
        num_generations=setting.generations,
        max_completion_length=setting.max_tokens,
        temperature=setting.temperature,
        learning_rate=setting.lr,
        shuffle_dataset=False,  # the same prompts in the same order for every reward
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        bf16=False,
        fp16=False,
        use_vllm=False,
        seed=seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
        **overrides,
    )


def trainer_for(reward, setting: Setting, seed: int, output_dir: str, policy: str | Path = LAB_POLICY, **overrides):
    """A GRPOTrainer on a fresh copy of `policy` (default: the shipped lab policy) with this reward (a TRL reward
    function) and the benchmark's prompts."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOTrainer

    return GRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(policy, dtype=torch.float32),
        reward_funcs=[reward],
        args=grpo_args(setting, seed, output_dir, **overrides),
        train_dataset=dataset(train_problems(setting)),
        processing_class=AutoTokenizer.from_pretrained(policy),
    )


def _inputs(tokenizer, problems: list[Problem], device) -> dict:
    """The problems' chat prompts, left-padded, as `generate` inputs."""
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p.question}], tokenize=False, add_generation_prompt=True
        )
        for p in problems
    ]
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    tokenizer.padding_side = side
    return dict(batch.to(device))


def _lengths(rows: list[list[int]], eos: int) -> list[int]:
    """Generated tokens of each row, up to and including EOS."""
    return [row.index(eos) + 1 if eos in row else len(row) for row in rows]


@torch.no_grad()
def greedy(model, tokenizer, problems: list[Problem], max_tokens: int) -> list[tuple[str, int]]:
    """Each problem's greedy solution and its generated token count (up to and including EOS)."""
    inputs, was_training = _inputs(tokenizer, problems, model.device), model.training
    model.eval()
    out = model.generate(
        **inputs,
        do_sample=False,
        max_new_tokens=max_tokens,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model.train(was_training)
    rows = out[:, inputs["input_ids"].shape[1] :].tolist()
    return [
        (tokenizer.decode(row[:n], skip_special_tokens=True), n)
        for row, n in zip(rows, _lengths(rows, tokenizer.eos_token_id), strict=True)
    ]


def probe(problems: list[Problem], texts: list[str], tokens: list[int], rewards: list) -> dict[str, float]:
    """The hacking probe on solutions: steps, repeated/unnecessary-step share, tokens, and reward per step."""
    stats = [solution_stats(p, t) for p, t in zip(problems, texts, strict=True)]
    per_step = [r / max(s["steps"], 1) for r, s in zip(rewards, stats, strict=True) if r is not None]
    return {
        "accuracy": fmean(s["correct"] for s in stats),
        "steps": fmean(s["steps"] for s in stats),
        "tokens": fmean(tokens),
        "repeat_share": fmean(s["repeat"] for s in stats),
        "reward": fmean(r for r in rewards if r is not None) if per_step else 0.0,
        "reward_per_step": fmean(per_step) if per_step else 0.0,
    }


class Probed:
    """A TRL reward function that also logs the hacking probe on every training batch (as `probe/<measure>`)."""

    def __init__(self, reward):
        self.reward, self.__name__ = reward, reward.__name__

    def __call__(self, prompts, completions, completion_ids=None, **kwargs):
        rewards = self.reward(prompts, completions, completion_ids=completion_ids, **kwargs)
        log_metric = kwargs.get("log_metric")
        if callable(log_metric) and "meta" in kwargs:
            problems = [
                Problem("", str(a), meta=as_meta(m)) for a, m in zip(kwargs["answer"], kwargs["meta"], strict=True)
            ]
            texts = [message_text(c, "assistant") for c in completions]
            lengths = [len(ids) for ids in completion_ids] if completion_ids is not None else [len(t) for t in texts]
            for name, value in probe(problems, texts, lengths, rewards).items():
                log_metric(f"probe/{name}", value)
        return rewards


def evaluate(model, tokenizer, problems: list[Problem], reward, max_tokens: int) -> dict[str, float]:
    """Greedy solutions of the held-out problems, through the probe (the reward is the run's own)."""
    solutions = greedy(model, tokenizer, problems, max_tokens)
    rewards = reward(
        prompts=[[{"role": "user", "content": p.question}] for p in problems],
        completions=[[{"role": "assistant", "content": text}] for text, _ in solutions],
        answer=[p.answer for p in problems],
    )
    return probe(problems, [t for t, _ in solutions], [n for _, n in solutions], rewards)
