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


# The report's statistics and verdicts (benchmarks/rl_lab_report.py) on synthetic curves, and resume.


def synthetic_run(reward: str, seed: int, accuracy: list[float], steps: float = 6.0, repeat: float = 0.0) -> dict:
    """A finished run evaluated every 10 steps of 4 prompts; steps and repeated-step share move linearly from the
    start policy's (6 steps, no repeats) to `steps` and `repeat`."""
    k = len(accuracy) - 1
    curve = [
        {
            "step": 10 * i,
            "prompts": 40 * i,
            "accuracy": a,
            "steps": 6.0 + (steps - 6.0) * i / k,
            "tokens": 110.0 + 18 * (steps - 6.0) * i / k,
            "repeat_share": repeat * i / k,
            "reward": a,
            "reward_per_step": a / 6,
        }
        for i, a in enumerate(accuracy)
    ]
    timing = {"seconds": 100.0, "eval_seconds": 20.0, "evaluations": len(curve)}
    return {"reward": reward, "seed": seed, "curve": curve, "train": [], **timing}


def lab(rule_final: float = 0.6, td_curve: tuple = (0.4, 0.55, 0.62, 0.65, 0.66), raw_steps: float = 9.0) -> list:
    """Three seeds of rule, mix_td, mix_mc and raw_prm, two of clip and delta: rule climbs 0.4 -> rule_final."""
    runs = []
    for s, jitter in enumerate((-0.01, 0.0, 0.01)):
        rule = [0.4, 0.45, 0.5, 0.55, rule_final]
        runs.append(synthetic_run("rule", s, [a + jitter for a in rule]))
        runs.append(synthetic_run("mix_td", s, [a + jitter for a in td_curve]))
        runs.append(synthetic_run("mix_mc", s, [a + jitter for a in rule]))
        runs.append(synthetic_run("raw_prm", s, [0.4, 0.3, 0.2, 0.1, 0.0], steps=raw_steps + jitter, repeat=0.5))
    for s in (0, 1):
        runs.append(synthetic_run("clip", s, [0.4, 0.45, 0.5, 0.55, 0.58], steps=6.0 + 0.01 * s))
        runs.append(synthetic_run("delta", s, [0.4, 0.45, 0.5, 0.55, 0.59], steps=6.0 - 0.01 * s))
    return runs


def test_mean_se_difference_and_prompts_to_reach():
    from benchmarks.rl_lab_report import difference, mean_se, prompts_to_reach, reach_stats

    assert mean_se([1.0, 3.0]) == {"mean": 2.0, "se": 1.0, "n": 2}
    assert mean_se([5.0])["se"] is None
    d = difference({"mean": 3.0, "se": 0.3}, {"mean": 1.0, "se": 0.4})
    assert d["mean"] == 2.0 and d["se"] == pytest.approx(0.5)
    assert difference({"mean": 1.0, "se": None}, {"mean": 1.0, "se": None})["se"] is None
    curve = synthetic_run("rule", 0, [0.4, 0.5, 0.7, 0.6])["curve"]
    assert prompts_to_reach(curve, 0.5) == 40 and prompts_to_reach(curve, 0.7) == 80
    assert prompts_to_reach(curve, 0.71) is None
    # a seed that never reaches the target counts as its last point plus one evaluation interval (a lower bound)
    stats = reach_stats([synthetic_run("rule", 0, [0.4, 0.5, 0.7]), synthetic_run("rule", 1, [0.4, 0.5, 0.6])], 0.7)
    assert stats["per_seed"] == [80, None] and stats["never"] == 1 and stats["mean"] == (80 + 120) / 2


def test_summary_changes_and_prompts_to_rule_final():
    from benchmarks.rl_lab_report import summarise

    summary = summarise(lab())
    rule = summary["rule"]
    assert rule["final"]["accuracy"] == pytest.approx(0.6)
    assert rule["change"]["accuracy"]["mean"] == pytest.approx(0.2) and rule["change"]["accuracy"]["se"] == 0.0
    # rule's seeds reach the seed mean (0.60) at 160 prompts, except seed 0 (0.59): 200 (160 + one interval)
    assert rule["reach"]["per_seed"] == [None, 160, 160]
    assert summary["mix_td"]["reach"]["per_seed"] == [80, 80, 80] and summary["mix_td"]["prompts_to_rule_final"] == 80
    assert summary["raw_prm"]["change"]["steps"]["mean"] == pytest.approx(3.0)
    assert summary["raw_prm"]["final"]["repeat_share"] == pytest.approx(0.5)


def test_verdicts_on_a_lab_where_every_claim_shows():
    from benchmarks.rl_lab_report import claims, summarise, table, verdict_lines

    summary = summarise(lab())
    verdicts = claims(summary)
    assert verdicts["rule_gain"]["verdict"] == "reproduced"
    assert verdicts["tdrm_data_efficiency"]["verdict"] == "reproduced"  # 80 prompts against ~173
    assert verdicts["mc_mix_data_efficiency"]["verdict"] == "not reproduced"  # the MC mix follows rule
    assert verdicts["td_vs_mc_prm_in_mix"]["verdict"] == "reproduced"
    assert verdicts["raw_prm_hacks"]["verdict"] == "reproduced"
    assert verdicts["clip_delta_stop_it"]["verdict"] == "reproduced"
    lines = verdict_lines(verdicts)
    assert len(lines) == len(verdicts) and lines[0].startswith("rule_gain: REPRODUCED")
    assert "| rule | 3 |" in table(summary)


def test_a_refinement_that_collapses_the_policy_does_not_stop_hacking():
    from benchmarks.rl_lab_report import claims, summarise, table

    runs = [r for r in lab() if r["reward"] != "clip"]  # clip's seeds end writing no solution: 1 step, none right
    runs += [synthetic_run("clip", s, [0.4, 0.2, 0.0, 0.0, 0.0], steps=1.0) for s in (0, 1)]
    summary = summarise(runs)
    assert summary["clip"]["collapsed"] == 2 and summary["rule"]["collapsed"] == 0
    verdicts = claims(summary)
    assert verdicts["raw_prm_hacks"]["verdict"] == "reproduced"
    assert verdicts["clip_delta_stop_it"]["verdict"] == "not reproduced"
    assert "stopped by: delta (of clip, delta)" in verdicts["clip_delta_stop_it"]["why"]
    assert "| clip | 2 |" in table(summary)


def test_verdicts_when_the_lab_cannot_show_them():
    from benchmarks.rl_lab_report import claims, summarise

    flat = claims(summarise(lab(rule_final=0.42, raw_steps=6.0)))  # rule gains 2 points; raw PRM keeps 6 steps
    assert flat["rule_gain"]["verdict"] == "not reproduced"
    assert flat["tdrm_data_efficiency"]["verdict"] == "not testable"  # no rule-only gain to reach faster
    # raw_prm's repeated-step share still rises 0.5: that alone is hacking
    assert flat["raw_prm_hacks"]["verdict"] == "reproduced"
    calm = [r for r in lab(raw_steps=6.0) if r["reward"] != "raw_prm"]
    calm += [synthetic_run("raw_prm", s, [0.4, 0.4, 0.4, 0.4, 0.4 + 0.01 * s]) for s in range(3)]
    verdicts = claims(summarise(calm))
    assert verdicts["raw_prm_hacks"]["verdict"] == "not reproduced"
    assert verdicts["clip_delta_stop_it"]["verdict"] == "not testable"
    one_seed = claims(summarise([r for r in lab() if r["seed"] == 0]))
    assert one_seed["rule_gain"]["verdict"] == "not testable"
    assert one_seed["raw_prm_hacks"]["verdict"] == "not testable"


def test_a_finished_run_is_skipped_and_a_changed_setting_is_not(tmp_path):
    import json
    from dataclasses import replace

    from benchmarks.rl_lab import QUICK, identity, plan_runs, split_finished

    prms = {"td": "/prms/td", "mc": "/prms/mc"}
    todo = plan_runs(["rule", "mix_td"], [0, 1])
    assert todo == [("rule", 0), ("mix_td", 0), ("rule", 1), ("mix_td", 1)]
    for name in ("rule", "mix_td"):
        run = {**identity(name, QUICK, prms), **synthetic_run(name, 0, [0.4, 0.5])}
        (tmp_path / f"{name}_seed0.json").write_text(json.dumps(run))
    done, left = split_finished(todo, tmp_path, QUICK, prms)
    assert [(r["reward"], r["seed"]) for r in done] == [("rule", 0), ("mix_td", 0)]
    assert left == [("rule", 1), ("mix_td", 1)]
    done, left = split_finished(todo, tmp_path, QUICK, {"td": "/other/td", "mc": "/prms/mc"})  # other PRMs
    assert [r["reward"] for r in done] == ["rule"] and ("mix_td", 0) in left  # rule runs use no PRM
    done, left = split_finished(todo, tmp_path, replace(QUICK, steps=99), prms)
    assert done == [] and len(left) == 4
    assert plan_runs(["rule", "clip"], None) == [("rule", 0), ("clip", 0), ("rule", 1), ("rule", 2), ("clip", 1)]


def test_probed_reward_logs_the_hacking_probe_of_a_training_batch():
    import json

    from rl_bridge.hacking import padded
    from rl_bridge.lab_grpo import Probed

    problem = generate_problems(1, seed=3, num_ops=3)[0]
    right = reference_solution(problem)  # 3 steps and the answer line

    def reward(prompts, completions, completion_ids=None, **kwargs):
        return [1.0, 2.0]

    logged: dict[str, float] = {}
    probed = Probed(reward)
    rewards = probed(
        prompts=[[{"role": "user", "content": problem.question}]] * 2,
        completions=[[{"role": "assistant", "content": text}] for text in (right, padded(right, 2))],
        completion_ids=[[0] * 100, [0] * 140],
        answer=[problem.answer] * 2,
        meta=[json.dumps(problem.meta)] * 2,
        log_metric=logged.__setitem__,
    )
    assert rewards == [1.0, 2.0] and probed.__name__ == "reward"
    assert logged["probe/steps"] == 5 and logged["probe/repeat_share"] == 0.5 and logged["probe/tokens"] == 120
    assert logged["probe/accuracy"] == 1.0 and logged["probe/reward_per_step"] == pytest.approx((1 / 4 + 2 / 6) / 2)


def test_plan_estimates_a_run_from_a_measured_one():
    from benchmarks.rl_lab import estimate

    measured = synthetic_run("rule", 0, [0.4, 0.5, 0.6])  # 20 steps, 100 s of which 20 s in 3 evaluations
    measured["train"] = [{"step": s, "step_time": 2.0} for s in range(1, 21)]  # 40 s of steps: 40 s of set-up
    prm = {**synthetic_run("clip", 0, [0.4, 0.5, 0.6]), "seconds": 140.0}  # no step times: (140 - 20) / 20 a step
    cost = estimate(Setting(steps=100, eval_every=10), [measured, prm])
    assert cost["rule"] == pytest.approx(40 + 2.0 * 100 + 11 * 20 / 3)
    assert cost["clip"] == pytest.approx(6.0 * 100 + 11 * 20 / 3) and cost["_prm"] == cost["clip"]
    assert estimate(Setting(steps=25, eval_every=10), [measured])["rule"] == pytest.approx(40 + 50 + 4 * 20 / 3)


def test_a_budgeted_run_is_estimated_from_finished_runs_then_the_short_measurement(tmp_path):
    """The budget's estimate of a run: its reward's finished run, else the dearest PRM reward's (a PRM reward) or
    rule's; before any run has finished, the short measurement cached under --work (its setting must match)."""
    import json
    from dataclasses import asdict, replace

    from benchmarks.rl_lab import costs, guess_seconds

    setting = Setting(steps=100, eval_every=10)
    rule, clip = synthetic_run("rule", 0, [0.4, 0.5, 0.6]), {**synthetic_run("clip", 0, [0.4, 0.5]), "seconds": 140.0}
    short = replace(setting, steps=4, eval_every=4)
    cache = {"setting": asdict(short), "runs": {"rule": rule, "clip_delta": clip}}
    (tmp_path / "plan_cost.json").write_text(json.dumps(cache))
    measured = costs(setting, [], tmp_path, policy=tmp_path / "unused")  # read from the cache: nothing trains
    finished = costs(setting, [rule, {**clip, "reward": "delta", "seconds": 300.0}], tmp_path, tmp_path / "unused")
    assert guess_seconds(measured, "mix_td") == measured["clip"] and guess_seconds(measured, "rule") == measured["rule"]
    assert guess_seconds(finished, "mix_td") == finished["delta"] > measured["clip"] and "clip" not in finished
    assert finished["rule"] == measured["rule"]
