"""The lab task: deterministic generation and an exact step checker."""

from __future__ import annotations

import json

from tdrm_search.tasks.lab import (
    MAX_VALUE,
    STEP_DELIMITER,
    TRAIN_SEED_BASE,
    first_error,
    generate_problems,
    grade,
    reference_solution,
    step_labels,
    train_seed,
)
from tdrm_search.types import Problem

QUESTION = (
    "Sam has 7 coins. On day 1 he finds 5. On day 2 each coin becomes 3. On day 3 he spends 4. "
    "How many coins after day 3?"
)
PROBLEM = Problem(
    question=QUESTION,
    answer="32",
    id="hand-0",
    meta={"start": 7, "ops": [["+", 5], ["*", 3], ["-", 4]], "num_ops": 3, "max_operand": 50},
)


def test_generation_is_deterministic_and_seed_dependent():
    a = generate_problems(50, seed=3, num_ops=(1, 6))
    assert a == generate_problems(50, seed=3, num_ops=(1, 6))
    assert a != generate_problems(50, seed=4, num_ops=(1, 6))
    assert [p.id for p in a[:2]] == ["lab-3-0", "lab-3-1"]


def test_generated_problems_respect_difficulty_and_bounds():
    for p in generate_problems(300, seed=0, num_ops=(2, 5), max_operand=20):
        assert 2 <= p.meta["num_ops"] == len(p.meta["ops"]) <= 5
        assert all(b <= 20 for op, b in p.meta["ops"] if op != "*")
        values = [int(s.split(" = ")[1]) for s in reference_solution(p).split(STEP_DELIMITER)[:-1]]
        assert all(0 <= v <= MAX_VALUE for v in values)
        assert step_labels(p, reference_solution(p).split(STEP_DELIMITER)) == [True] * (p.meta["num_ops"] + 1)
        assert grade(p, reference_solution(p))


def test_training_seeds_are_disjoint_from_eval_seeds():
    assert train_seed(0) == TRAIN_SEED_BASE > 10**6


def test_question_and_reference_solution_format():
    assert generate_problems(1, seed=0, num_ops=2)[0].question.endswith("How many coins after day 2?")
    assert (
        reference_solution(PROBLEM)
        == "Day 1: 7 + 5 = 12\n\nDay 2: 12 * 3 = 36\n\nDay 3: 36 - 4 = 32\n\nThe answer is 32."
    )


def test_correct_solution_with_delimiters_and_whitespace():
    steps = ["Day 1: 7 + 5 = 12\n\n", "Day 2: 12 * 3 = 36\n\n", " Day 3: 36 - 4 = 32\n\n", "The answer is 32."]
    assert step_labels(PROBLEM, steps) == [True, True, True, True]
    assert first_error(PROBLEM, steps) is None


def test_wrong_middle_step_with_right_final_answer():
    steps = ["Day 1: 7 + 5 = 12", "Day 2: 12 * 3 = 35", "Day 3: 36 - 4 = 32", "The answer is 32."]
    assert step_labels(PROBLEM, steps) == [True, False, False, False]
    assert first_error(PROBLEM, steps) == 1
    assert grade(PROBLEM, STEP_DELIMITER.join(steps))


def test_right_middle_steps_with_wrong_final_answer():
    steps = ["Day 1: 7 + 5 = 12", "Day 2: 12 * 3 = 36", "Day 3: 36 - 4 = 32", "The answer is 23."]
    assert step_labels(PROBLEM, steps) == [True, True, True, False]
    assert first_error(PROBLEM, steps) == 3
    assert not grade(PROBLEM, STEP_DELIMITER.join(steps))


def test_plan_error_is_caught_although_arithmetic_is_right():
    # Correct arithmetic, but the wrong running value is carried (7 instead of 12).
    steps = ["Day 1: 7 + 5 = 12", "Day 2: 7 * 3 = 21", "Day 3: 21 - 4 = 17", "The answer is 17."]
    assert first_error(PROBLEM, steps) == 1
    # Correct arithmetic on the right value, but the wrong operand.
    assert first_error(PROBLEM, ["Day 1: 7 + 4 = 11"]) == 0
    # Right arithmetic and operand, but the wrong day.
    assert first_error(PROBLEM, ["Day 2: 7 + 5 = 12"]) == 0


def test_early_answer_extra_steps_and_garbage_are_wrong():
    assert step_labels(PROBLEM, ["Day 1: 7 + 5 = 12", "The answer is 12."]) == [True, False]
    full = reference_solution(PROBLEM).split(STEP_DELIMITER)
    assert step_labels(PROBLEM, full + ["The answer is 32."])[-1] is False
    assert step_labels(PROBLEM, ["", "zz", "1 + = ="]) == [False, False, False]
    assert step_labels(PROBLEM, []) == []
    assert not grade(PROBLEM, "no answer here")


def test_jsonl_round_trip():
    for p in generate_problems(5, seed=1):
        row = json.loads(json.dumps(p.to_dict()))
        q = Problem.from_dict(row)
        assert q == p
        assert step_labels(q, reference_solution(q).split(STEP_DELIMITER)) == step_labels(
            p, reference_solution(p).split(STEP_DELIMITER)
        )
