"""The lab task: seeded multi-step arithmetic word problems whose every step is checked exactly.

A problem starts from a number of coins and applies a list of operations, one sentence each:

    Sam has 7 coins. On day 1 he finds 5. On day 2 each coin becomes 3. On day 3 he spends 4.
    How many coins after day 3?

Its solution is one operation per step, steps joined by the step delimiter "\\n\\n":

    Day 1: 7 + 5 = 12\\n\\nDay 2: 12 * 3 = 36\\n\\nDay 3: 36 - 4 = 32\\n\\nThe answer is 32.

A step is correct only if it applies the day's operation, with the problem's operand, to the running
value carried from the previous step, and its arithmetic is right; the final line must state the final
value. (Numbering the days lets a two-layer model find each day's operand by lookup.) Running values stay in
[0, MAX_VALUE] and a multiplication never follows a multiplication.

Held-out convention: evaluation uses seeds below TRAIN_SEED_BASE; training uses seeds from
TRAIN_SEED_BASE upwards (`train_seed`), so training and evaluation draw from disjoint seed streams.
"""

from __future__ import annotations

import random
import re
from typing import Any

from tdrm_search.types import Problem

STEP_DELIMITER = "\n\n"
MAX_VALUE = 999
MAX_FACTOR = 5
TRAIN_SEED_BASE = 1_000_000_000
DEFAULT_NUM_OPS: int | tuple[int, int] = 5
DEFAULT_MAX_OPERAND = 9
DEFAULT_DIFFICULTY: dict[str, Any] = {"num_ops": DEFAULT_NUM_OPS, "max_operand": DEFAULT_MAX_OPERAND}

_SENTENCES = {"+": "he finds {}.", "-": "he spends {}.", "*": "each coin becomes {}."}
_APPLY = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
_ANSWER_RE = re.compile(r"The answer is\s*\$?(-?[\d,]+)")


def train_seed(index: int) -> int:
    """The seed of the index-th training batch (never used for evaluation)."""
    return TRAIN_SEED_BASE + index


def _next_op(rng: random.Random, value: int, prev: str | None, max_operand: int) -> tuple[str, int]:
    choices = [op for op, ok in (("+", value < MAX_VALUE), ("-", value >= 1)) if ok]
    if prev != "*" and 1 <= value <= MAX_VALUE // 2:
        choices.append("*")
    op = rng.choice(choices)
    if op == "+":
        return op, rng.randint(1, min(max_operand, MAX_VALUE - value))
    if op == "-":
        return op, rng.randint(1, min(max_operand, value))
    return op, rng.randint(2, min(MAX_FACTOR, MAX_VALUE // value))


def _question(start: int, ops: list[tuple[str, int]]) -> str:
    days = [f"On day {day} {_SENTENCES[op].format(b)}" for day, (op, b) in enumerate(ops, 1)]
    return " ".join([f"Sam has {start} coins.", *days, f"How many coins after day {len(ops)}?"])


def _make_problem(rng: random.Random, num_ops: int, max_operand: int, pid: str) -> Problem:
    start = rng.randint(1, max_operand)
    ops: list[tuple[str, int]] = []
    value = start
    for _ in range(num_ops):
        op, b = _next_op(rng, value, ops[-1][0] if ops else None, max_operand)
        ops.append((op, b))
        value = _APPLY[op](value, b)
    meta = {"start": start, "ops": [[op, b] for op, b in ops], "num_ops": num_ops, "max_operand": max_operand}
    return Problem(question=_question(start, ops), answer=str(value), id=pid, meta=meta)


def generate_problems(
    n: int,
    seed: int,
    num_ops: int | tuple[int, int] = DEFAULT_NUM_OPS,
    max_operand: int = DEFAULT_MAX_OPERAND,
) -> list[Problem]:
    """`n` problems drawn deterministically from `seed`; `num_ops` is a count or an inclusive (lo, hi) range."""
    lo, hi = (num_ops, num_ops) if isinstance(num_ops, int) else num_ops
    rng = random.Random(seed)
    return [_make_problem(rng, rng.randint(lo, hi), max_operand, f"lab-{seed}-{i}") for i in range(n)]


def _ops(problem: Problem) -> list[tuple[str, int]]:
    return [(op, int(b)) for op, b in problem.meta["ops"]]


def _step(day: int, value: int, op: str, b: int) -> str:
    return f"Day {day}: {value} {op} {b} = {_APPLY[op](value, b)}"


def reference_solution(problem: Problem) -> str:
    """The correct solution: one step per operation, then the final-answer line (no EOS)."""
    value, steps = int(problem.meta["start"]), []
    for day, (op, b) in enumerate(_ops(problem), 1):
        steps.append(_step(day, value, op, b))
        value = _APPLY[op](value, b)
    return STEP_DELIMITER.join(steps + [f"The answer is {value}."])


def step_labels(problem: Problem, steps: list[str]) -> list[bool]:
    """True for each step while every step so far is correct, False from the first wrong step on."""
    ops, value = _ops(problem), int(problem.meta["start"])
    labels: list[bool] = []
    for i, raw in enumerate(steps):
        text = raw.strip()
        if i < len(ops):
            op, b = ops[i]
            expected = _step(i + 1, value, op, b)
            value = _APPLY[op](value, b)
        else:
            expected = f"The answer is {value}." if i == len(ops) else None
        ok = text == expected and (not labels or labels[-1])
        labels.append(ok)
    return labels


def first_error(problem: Problem, steps: list[str]) -> int | None:
    """Index of the first wrong step, or None when every step is correct."""
    labels = step_labels(problem, steps)
    return labels.index(False) if False in labels else None


def extract_answer(solution_text: str) -> str | None:
    """The number after the last "The answer is", commas removed, or None."""
    matches = _ANSWER_RE.findall(solution_text)
    return matches[-1].replace(",", "") if matches else None


def grade(problem: Problem, solution_text: str) -> bool:
    """Whether the solution's final answer equals the problem's answer (steps are not checked)."""
    answer = extract_answer(solution_text)
    try:
        return answer is not None and int(answer) == int(problem.answer or "")
    except ValueError:
        return False
