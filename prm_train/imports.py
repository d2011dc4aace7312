"""Step-labelled PRM data in the formats the field trains on, read as rollouts (steps joined by the engine's
delimiter, `labels` the given step labels, `outcome` the last step's label):

  math-shepherd  {"input": "<question> Step 1: ... ки\\nStep 2: ... ки", "label": the same text with each "ки"
                 replaced by "+" or "-"}  (peiyi9979/Math-Shepherd)
  rlhflow        {"conversations": [{"role": "user", "content": "<question> Step 1: ..."}, {"role": "assistant",
                 "content": "+"}, {"role": "user", "content": "Step 2: ..."}, ...]}  (RLHFlow/*-PRM-*-Data)
  prm800k        {"question": {"problem", "ground_truth_answer"}, "label": {"steps": [{"completions": [{"text",
                 "rating"}], "chosen_completion": i}]}}: the chosen completion of each step, then the first
                 completion rated -1 where the labeller found an error (no chosen one); rating >= 0 is a good step
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from prm_train.data import Rollout
from tdrm_search.datasets import read_jsonl
from tdrm_search.types import Problem

TAG = "ки"
FIRST_STEP = "Step 1:"


def rollout(question: str, steps: list[str], labels: list[bool], pid: str, answer: str | None = None) -> Rollout:
    if not steps:
        raise ValueError("no steps")
    texts = [s.strip() + "\n\n" for s in steps[:-1]] + [steps[-1].strip()]
    return Rollout(
        Problem(question.strip(), answer, id=pid),
        texts,
        [len(t) for t in texts],  # characters: these rows carry no token counts
        outcome=labels[-1],
        finish="answer",
        labels=labels,
    )


def split_question(text: str) -> tuple[str, str]:
    """Question and first step of a turn that writes them together ("<question> Step 1: ...")."""
    at = text.find(FIRST_STEP)
    if at <= 0:
        raise ValueError(f"no {FIRST_STEP!r} after the question in {text[:60]!r}")
    return text[:at], text[at:]


def math_shepherd(row: dict[str, Any], index: int) -> Rollout:
    inputs, labelled = row["input"], row["label"]
    question, body = split_question(inputs)
    offset = len(question)
    steps, labels, start = [], [], 0
    for k, piece in enumerate(body.split(TAG)[:-1]):
        steps.append(piece)
        start += len(piece)
        mark = labelled[offset + start - k]  # each earlier 2-character tag is one label character in `label`
        if mark not in "+-":
            raise ValueError(f"step {k + 1} has label {mark!r}, not + or -")
        labels.append(mark == "+")
        start += len(TAG)
    return rollout(question, steps, labels, str(row.get("id", f"math-shepherd-{index}")))


def rlhflow(row: dict[str, Any], index: int) -> Rollout:
    turns = row["conversations"]
    users = [t["content"] for t in turns if t["role"] == "user"]
    marks = [t["content"].strip() for t in turns if t["role"] == "assistant"]
    if len(users) != len(marks) or not users or any(m not in ("+", "-") for m in marks):
        raise ValueError(f"need alternating user steps and assistant '+'/'-' labels, got {len(users)} and {marks}")
    question, first = split_question(users[0])
    return rollout(question, [first, *users[1:]], [m == "+" for m in marks], str(row.get("id", f"rlhflow-{index}")))


def prm800k(row: dict[str, Any], index: int) -> Rollout:
    steps, labels = [], []
    for k, step in enumerate(row["label"]["steps"]):
        completions, chosen = step["completions"], step.get("chosen_completion")
        if chosen is None:  # the labeller stopped here: the first completion rated -1 is the error
            bad = next((c for c in completions if c.get("rating") == -1), None)
            if bad is None:
                raise ValueError(f"step {k + 1} has no chosen completion and none rated -1")
            steps.append(bad["text"])
            labels.append(False)
            break
        steps.append(completions[chosen]["text"])
        rating = completions[chosen].get("rating")
        labels.append(rating is not None and rating >= 0)
    question = row["question"]
    pid = str(row.get("id") or question.get("unique_id") or f"prm800k-{index}")
    return rollout(question["problem"], steps, labels, pid, question.get("ground_truth_answer"))


FORMATS: dict[str, Callable[[dict[str, Any], int], Rollout]] = {
    "math-shepherd": math_shepherd,
    "rlhflow": rlhflow,
    "prm800k": prm800k,
}


def import_rollouts(path: str | Path, fmt: str) -> list[Rollout]:
    """Every row of a step-labelled JSONL file in format `fmt`; a malformed row raises ValueError with its line."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {sorted(FORMATS)}")
    out = []
    for lineno, row in read_jsonl(path):
        try:
            out.append(FORMATS[fmt](row, lineno))
        except (KeyError, TypeError, ValueError, IndexError) as err:
            raise ValueError(f"{path}:{lineno}: not a {fmt} row ({type(err).__name__}: {err})") from err
    return out
