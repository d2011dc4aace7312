"""TRL adapter: called the way GRPOTrainer calls reward functions, then a real GRPOTrainer run on CPU with the lab
policy whose logs must carry our rewards."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from rl_bridge.reward import RewardConfig, RewardFunction
from rl_bridge.trl import AsyncTRLReward, TRLReward
from tdrm_search.loading import LAB_POLICY
from tdrm_search.prms.oracle import OraclePRM
from tdrm_search.tasks.lab import generate_problems, reference_solution

PROBLEMS = generate_problems(4, seed=21)


def trl_kwargs(metrics: dict, extra: dict) -> dict:
    """The keyword arguments GRPOTrainer adds besides the dataset columns."""
    return {
        "trainer_state": object(),
        "log_metric": lambda k, v: metrics.setdefault(k, []).append(v),
        "log_extra": lambda k, v: extra.setdefault(k, []).extend(v),
    }


def reward(mode: str = "mix", **kwargs) -> TRLReward:
    return TRLReward(RewardFunction(RewardConfig(mode=mode), OraclePRM()), meta_column="meta", **kwargs)


def test_conversational_call_like_grpo_trainer():
    metrics: dict = {}
    prompts = [[{"role": "user", "content": p.question}] for p in PROBLEMS]
    completions = [[{"role": "assistant", "content": reference_solution(p)}] for p in PROBLEMS[:2]]
    completions += [[{"role": "assistant", "content": "The answer is 0."}], [{"role": "assistant", "content": ""}]]
    out = reward()(
        prompts=prompts,
        completions=completions,
        completion_ids=[[1, 2]] * 4,
        answer=[p.answer for p in PROBLEMS],
        meta=[json.dumps(p.meta) for p in PROBLEMS],
        **trl_kwargs(metrics, {}),
    )
    assert out == [pytest.approx(1.0), pytest.approx(1.0), 0.0, 0.0]
    assert metrics["tdrm_reward/rule"] == [0.5] and metrics["tdrm_reward/abstain"] == [0.0]


def test_text_prompts_and_a_missing_answer_column_abstain():
    prompts = [f"Q: {p.question}\nA:\n" for p in PROBLEMS]
    fn = reward("rule", prompt_template="Q: {question}\nA:\n")
    completions = [reference_solution(p) for p in PROBLEMS]
    assert fn(prompts=prompts, completions=completions, completion_ids=None, trainer_state=None) == [None] * 4
    assert fn(prompts=prompts, completions=completions, answer=[None, *[p.answer for p in PROBLEMS[1:]]]) == [
        None,
        1.0,
        1.0,
        1.0,
    ]
    items = fn.items(prompts, completions, {"answer": [p.answer for p in PROBLEMS]})
    assert [i.question for i in items] == [p.question for p in PROBLEMS]


def test_async_variant_on_an_event_loop_thread_like_trl():
    """TRL awaits async reward functions on a daemon thread's loop: no signal may be needed anywhere."""
    fn = AsyncTRLReward(RewardFunction(RewardConfig(mode="clip", grade_timeout_s=5.0), OraclePRM()), meta_column="meta")
    result: dict = {}

    def loop_thread():
        result["out"] = asyncio.run(
            fn(
                prompts=[[{"role": "user", "content": p.question}] for p in PROBLEMS],
                completions=[reference_solution(p) for p in PROBLEMS],
                completion_ids=None,
                answer=[p.answer for p in PROBLEMS],
                meta=[p.meta for p in PROBLEMS],
            )
        )

    thread = threading.Thread(target=loop_thread)
    thread.start()
    thread.join(60)
    assert result["out"] == [1.0] * 4
    from trl.trainer.utils import is_async_callable

    assert is_async_callable(fn) and not is_async_callable(reward())


@pytest.mark.slow
def test_grpo_trainer_runs_with_our_rewards_in_its_logs(tmp_path):
    from transformers import AutoTokenizer
    from trl import GRPOTrainer

    from rl_bridge.lab_grpo import Setting, dataset, grpo_args

    problems = generate_problems(8, seed=22, num_ops=(1, 2))  # short solutions: the policy can finish in 48 tokens
    sync_fn = TRLReward(RewardFunction(RewardConfig(mode="mix"), OraclePRM()), meta_column="meta", name="tdrm_mix")
    async_fn = AsyncTRLReward(
        RewardFunction(RewardConfig(mode="clip_delta"), OraclePRM()), meta_column="meta", name="tdrm_clip_delta"
    )
    args = grpo_args(Setting(steps=2, batch=4, generations=4, max_tokens=48, lr=1e-5), 0, str(tmp_path))
    trainer = GRPOTrainer(
        model=str(LAB_POLICY),
        reward_funcs=[sync_fn, async_fn],
        args=args,
        train_dataset=dataset(problems),
        processing_class=AutoTokenizer.from_pretrained(LAB_POLICY),
    )
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "rewards/tdrm_mix/mean" in entry]
    assert len(logs) == 2
    for entry in logs:
        assert 0.0 <= entry["rewards/tdrm_mix/mean"] <= 1.0
        assert -0.5 <= entry["rewards/tdrm_clip_delta/mean"] <= 1.0
        assert 0.0 <= entry["tdrm_mix/rule"] <= 1.0 and entry["tdrm_mix/abstain"] == 0.0
