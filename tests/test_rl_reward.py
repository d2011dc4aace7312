"""rl_bridge.reward and its refinements: every mode against hand-computed values, bounded returns, bad input."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rl_bridge.refinements import clip_delta_rewards, clip_rewards, delta_rewards
from rl_bridge.reward import RewardConfig, RewardFunction, RewardItem, question_from_prompt, split_completion
from tdrm_search.loading import LAB_PRM
from tdrm_search.prms.base import ScoreOutput, ScoreRequest
from tdrm_search.prms.oracle import OraclePRM
from tdrm_search.tasks.lab import STEP_DELIMITER, generate_problems, reference_solution


class TablePRM:
    """Step values looked up by step text (default 0.5); records every call."""

    def __init__(self, table: dict[str, float]):
        self.table, self.calls = table, []

    def score(self, requests: list[ScoreRequest]) -> ScoreOutput:
        self.calls.append(requests)
        scores = [[self.table.get(s, 0.5) for s in r.steps[r.start :]] for r in requests]
        return ScoreOutput(scores, [0] * len(requests), [0] * len(requests))


SOLUTION = "2 + 3 = 5\n\n5 * 2 = 10\n\nThe answer is 10."
VALUES = {"2 + 3 = 5": 0.9, "5 * 2 = 10": 0.6, "The answer is 10.": 0.8}


def reward(mode: str, completion: str = SOLUTION, reference: str | None = "10", prm=None, **config):
    fn = RewardFunction(RewardConfig(mode=mode, grade_timeout_s=None, **config), prm or TablePRM(VALUES))
    return fn.score([RewardItem("Sam has 2 coins.", completion, reference)])[0]


def test_rule_mode_is_the_verdict_with_configurable_values():
    assert reward("rule").reward == 1.0
    assert reward("rule", reference="11").reward == 0.0
    out = reward("rule", reference="11", correct=2.0, incorrect=-1.0)
    assert out.reward == -1.0 and out.step_rewards == [0.0, 0.0, -1.0]


def test_mix_is_weighted_probability_plus_rule():
    out = reward("mix")  # last = 0.8
    assert out.reward == pytest.approx(0.2 * 0.8 + 0.8 * 1.0)
    assert out.prm == pytest.approx(0.8)
    assert reward("mix", weight=0.5, aggregation="min").reward == pytest.approx(0.5 * 0.6 + 0.5)
    wrong = reward("mix", reference="11", aggregation="mean")
    assert wrong.reward == pytest.approx(0.2 * (0.9 + 0.6 + 0.8) / 3)


def test_mix_can_score_the_solution_without_its_final_answer_paragraph():
    prm = TablePRM(VALUES)
    out = reward("mix", prm=prm, drop_answer_step=True)
    assert prm.calls[0][0].steps == ("2 + 3 = 5", "5 * 2 = 10")
    assert out.reward == pytest.approx(0.2 * 0.6 + 0.8)
    assert out.step_rewards == [0.0, 0.0, pytest.approx(0.92)]  # reward placed at the trajectory's last step


def test_clip_mode_hand_computed():
    out = reward("clip", eta=0.7)  # min(r - 0.7, 0): 0, -0.1, 0
    assert out.step_rewards == pytest.approx([0.0, -0.1, 1.0])
    assert out.reward == pytest.approx(0.9)
    assert reward("clip", eta=0.7, scale=2.0).reward == pytest.approx(0.8)


def test_delta_mode_hand_computed():
    out = reward("delta")  # 0.9-0.6, 0.6-0.8, 0.8 (+1 success)
    assert out.step_rewards == pytest.approx([0.3, -0.2, 1.8])
    assert out.reward == pytest.approx(1.9)  # success + first step's value


def test_clip_delta_mode_hand_computed():
    out = reward("clip_delta", eta=0.7)  # clipped 0, -0.1, 0 -> delta 0.1, -0.1, 0
    assert out.step_rewards == pytest.approx([0.1, -0.1, 1.0])
    assert out.reward == pytest.approx(1.0)
    assert reward("clip_delta", eta=0.95).reward == pytest.approx(1.0 + 0.9 - 0.95)


def test_step_ends_are_character_and_token_positions():
    out = reward("clip")
    assert [SOLUTION[e] for e in out.char_ends] == ["\n", "\n", "."] and out.char_ends[-1] == len(SOLUTION) - 1
    ids = [ord(c) for c in SOLUTION]  # a character tokenizer: token ends equal character ends
    steps = split_completion(SOLUTION, "\n\n", ids, lambda xs: "".join(map(chr, xs)))
    assert steps.token_ends == steps.char_ends == out.char_ends
    assert [t.strip() for t in steps.texts] == list(VALUES)


def test_runs_of_delimiters_and_blank_text_are_no_steps():
    assert split_completion("a\n\n\n\nb", "\n\n").texts == ["a\n\n\n\n", "b"]
    assert split_completion("  \n\n ", "\n\n").texts == []


def test_question_from_rendered_prompt():
    assert question_from_prompt("Q: Sam has 3 coins.\nA:\n", "Q: {question}\nA:\n") == "Sam has 3 coins."
    assert question_from_prompt("plain", "Q: {question}\nA:\n") == "plain"
    assert question_from_prompt("plain", None) == "plain"


def test_one_batched_prm_call_and_oracle_on_lab_problems():
    problems = generate_problems(6, seed=3)
    prm = OraclePRM()
    calls = []
    original = prm.score
    prm.score = lambda requests: calls.append(len(requests)) or original(requests)
    fn = RewardFunction(RewardConfig(mode="clip_delta"), prm)
    items = [RewardItem(p.question, reference_solution(p), p.answer, meta=p.meta) for p in problems]
    outs = fn.score(items)
    assert calls == [6]
    assert [o.reward for o in outs] == [1.0] * 6  # correct solution: every clipped step value is 0


# ---------------------------------------------------------------- bounded returns (hypothesis)

step_values = st.lists(st.floats(0.0, 1.0), min_size=1, max_size=64)


@settings(max_examples=300, deadline=None)
@given(step_values, st.floats(0.0, 1.0), st.floats(0.01, 4.0), st.integers(0, 32))
def test_refined_returns_are_bounded_whatever_the_length(values, eta, scale, pad):
    padded = values + [values[-1]] * pad
    assert sum(clip_rewards(padded, eta, scale)) <= 0.0
    assert sum(clip_rewards(padded, eta, scale)) <= sum(clip_rewards(values, eta, scale)) + 1e-9
    assert math.isclose(sum(delta_rewards(padded, scale)), scale * values[0], abs_tol=1e-9)
    assert math.isclose(sum(clip_delta_rewards(padded, eta, scale)), scale * min(values[0] - eta, 0.0), abs_tol=1e-9)
    assert -scale * eta - 1e-9 <= sum(clip_delta_rewards(padded, eta, scale)) <= 1e-9


@settings(max_examples=100, deadline=None)
@given(step_values, st.sampled_from(["clip", "delta", "clip_delta"]), st.booleans())
def test_full_reward_is_bounded_and_equals_the_sum_of_step_rewards(values, mode, correct):
    completion = (
        "\n\n".join(f"step {i}" for i in range(len(values) - 1))
        + ("\n\n" if len(values) > 1 else "")
        + "The answer is 7."
    )
    table = {f"step {i}": v for i, v in enumerate(values[:-1])} | {"The answer is 7.": values[-1]}
    out = reward(mode, completion, "7" if correct else "8", TablePRM(table), eta=0.5)
    assert out.reward == pytest.approx(sum(out.step_rewards))
    assert -0.5 * len(values) - 1e-9 <= out.reward - out.rule <= (1.0 if mode == "delta" else 0.0)


# ---------------------------------------------------------------- bad input


def test_missing_reference_abstains_with_a_message():
    for ref in (None, "", "  "):
        out = reward("mix", reference=ref)
        assert out.reward is None and "reference" in out.error


def test_empty_completion_is_a_failed_answer():
    for mode in ("rule", "mix", "clip", "delta", "clip_delta"):
        out = reward(mode, completion="")
        assert out.reward == 0.0 and out.step_rewards == [] and out.error is None


def test_nan_from_the_prm_makes_only_that_item_abstain():
    fn = RewardFunction(RewardConfig(mode="delta", grade_timeout_s=None), TablePRM({"bad": math.nan}))
    good, bad = fn.score([RewardItem("q", "The answer is 1.", "1"), RewardItem("q", "bad\n\nThe answer is 1.", "1")])
    assert good.reward == pytest.approx(1.5) and good.error is None
    assert bad.reward is None and "nan" in bad.error.lower()


def test_a_failing_prm_never_raises():
    class Broken:
        def score(self, requests):
            raise RuntimeError("out of memory")

    out = RewardFunction(RewardConfig(mode="mix"), Broken()).score([RewardItem("q", "The answer is 1.", "1")])[0]
    assert out.reward is None and "out of memory" in out.error


def test_oracle_without_metadata_abstains_instead_of_crashing():
    out = reward("clip", prm=OraclePRM())
    assert out.reward is None and "metadata" in out.error


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="mode"):
        RewardConfig(mode="sum")
    with pytest.raises(ValueError, match="needs a PRM"):
        RewardFunction(RewardConfig(mode="mix"))
    assert RewardFunction(RewardConfig(mode="rule")).prm is None


def test_grading_with_a_time_bound_runs_on_worker_processes_each_answer_bounded():
    fn = RewardFunction(RewardConfig(mode="rule", grade_timeout_s=10.0, grade_workers=2))
    try:
        items = [RewardItem("q", f"The answer is {i}.", str(i if i % 2 else i + 1)) for i in range(8)]
        assert [o.reward for o in fn.score(items)] == [0.0, 1.0] * 4
        assert fn.grader.workers == 2
        slow = RewardItem("q", r"The answer is $e^{e^{e^{10}}}$.", "5")  # sympy needs about a second
        quick = [RewardItem("q", "The answer is 3/4.", "0.75"), RewardItem("q", "The answer is 2.", "3")]
        bounded = RewardFunction(RewardConfig(mode="rule", grade_timeout_s=0.5, grade_workers=2))
        try:  # the slow answer's worker is killed at its bound (a wrong answer); the others are graded beside it
            bounded.grader.equivalent("1", "1.0", 60)  # start the workers first
            assert [o.reward for o in bounded.score([slow, *quick])] == [0.0, 1.0, 0.0]
        finally:
            bounded.close()
    finally:
        fn.close()


def test_a_grader_failure_makes_the_item_abstain(monkeypatch):
    from tdrm_search.grading import GradingPool

    def broken(*args):
        raise RuntimeError("the grading worker process did not start")

    monkeypatch.setattr(GradingPool, "equivalent_all", broken)
    fn = RewardFunction(RewardConfig(mode="rule", grade_timeout_s=5.0))
    out = fn.score([RewardItem("Sam has 2 coins.", SOLUTION, "10.0")])[0]
    assert out.reward is None and "grading failed" in out.error


@pytest.mark.skipif(not LAB_PRM.is_dir(), reason="the trained lab PRM is not shipped yet")
def test_trained_lab_prm_through_every_mode():
    problems = generate_problems(4, seed=9)
    items = [RewardItem(p.question, reference_solution(p), p.answer) for p in problems]
    for mode in ("mix", "clip", "delta", "clip_delta"):
        outs = RewardFunction.load(prm="lab", mode=mode).score(items)
        for out in outs:
            assert out.error is None and out.rule == 1.0 and 0.0 <= out.prm <= 1.0
            assert out.reward == pytest.approx(sum(out.step_rewards))


def test_reward_hacking_benchmark_pays_raw_sums_for_padding_and_delta_nothing():
    """The probe's step-local checker must read the lab's step format (it once silently rated every step 0)."""
    from rl_bridge import hacking as bench

    problems = generate_problems(5, seed=2)
    steps = tuple(reference_solution(problems[0]).split(STEP_DELIMITER))
    assert bench.StepArithmeticPRM().score([ScoreRequest(problems[0], steps)]).scores == [[1.0] * len(steps)]
    table = bench.returns(bench.StepArithmeticPRM(), problems, [0, 2], {"eta": 0.5, "grade_timeout_s": None})
    assert all(b == a + 2 for a, b in zip(table["raw_sum"][0], table["raw_sum"][2], strict=True))
    for mode in ("delta", "clip_delta"):
        assert table[mode][0] == table[mode][2]
