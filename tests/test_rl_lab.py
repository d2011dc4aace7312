"""benchmarks/rl_lab.py: a few real GRPO steps on the lab policy with two of its rewards; every reward TRL logged must
be what rl_bridge computes for the same completion, and the logged batch means must be their means."""

from __future__ import annotations

import pandas as pd
import pytest

from rl_bridge.lab_grpo import Setting, make_reward, solution_stats, train_problems, trainer_for
from rl_bridge.reward import RewardConfig, RewardFunction, RewardItem
from tdrm_search.loading import load_prm
from tdrm_search.tasks.lab import generate_problems, reference_solution

SETTING = Setting(steps=2, batch=8, generations=4, max_tokens=128)


@pytest.fixture(scope="module")
def prms():
    return {"td": load_prm(None, backend="hf")}


def expected_rewards(name: str, prm, items: list[RewardItem]) -> list[float]:
    """rl_bridge's rewards, computed here on their own: clip_delta's reward, or rule + the summed step values."""
    if name == "clip_delta":
        return [o.reward for o in RewardFunction(RewardConfig(mode="clip_delta"), prm).score(items)]
    return [o.rule + sum(o.step_scores) for o in RewardFunction(RewardConfig(mode="mix"), prm).score(items)]


@pytest.mark.parametrize("name", ["clip_delta", "rule_raw_prm"])
def test_logged_grpo_rewards_are_rl_bridge_rewards(name, prms, tmp_path):
    trainer = trainer_for(make_reward(name, prms), SETTING, 0, str(tmp_path), log_completions=True)
    trainer.train()
    answers = {p.question: p.answer for p in train_problems(SETTING)}
    means = {e["step"]: e[f"rewards/{name}/mean"] for e in trainer.state.log_history if f"rewards/{name}/mean" in e}
    assert sorted(means) == [1, 2]
    for step, mean in means.items():
        logged = pd.read_parquet(tmp_path / "completions" / f"completions_{step:05d}.parquet")
        assert len(logged) == SETTING.batch
        questions = [prompt[-1]["content"] for prompt in logged["prompt"]]
        assert set(questions) <= set(answers)
        items = [
            RewardItem(q, completion[-1]["content"], answers[q])
            for q, completion in zip(questions, logged["completion"], strict=True)
        ]
        expected = expected_rewards(name, prms["td"], items)
        assert logged[name].tolist() == pytest.approx(expected, abs=1e-4)
        assert mean == pytest.approx(sum(expected) / len(expected), abs=1e-4)


def test_solution_stats_flag_repeated_and_extra_steps():
    problem = generate_problems(1, seed=3, num_ops=3)[0]
    steps = reference_solution(problem).split("\n\n")
    assert solution_stats(problem, reference_solution(problem)) == {"correct": 1.0, "steps": 4, "repeat": 0.0}
    repeated = "\n\n".join(steps[:2] + steps[1:])  # a computation step twice: right answer, one step too many
    assert solution_stats(problem, repeated) == {"correct": 1.0, "steps": 5, "repeat": 1.0}
    assert solution_stats(problem, "\n\n".join(steps[:1] + steps[-1:]))["repeat"] == 0.0  # short, not repeated
