"""Step-labelled PRM data in the field's formats, on rows written here in those formats."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from prm_train.data import read_rollouts
from prm_train.imports import import_rollouts
from prm_train.targets import TargetSpec, all_targets

Q = "Janet has 3 apples and buys 2 more. How many apples does she have?"
MATH_SHEPHERD = {
    "input": f"{Q} Step 1: She buys 2, so 3 + 2 = 5. ки\nStep 2: The answer is 6. ки",
    "label": f"{Q} Step 1: She buys 2, so 3 + 2 = 5. +\nStep 2: The answer is 6. -",
    "task": "GSM8K",
}
RLHFLOW = {
    "conversations": [
        {"role": "user", "content": f"{Q} Step 1: 3 + 2 = 5."},
        {"role": "assistant", "content": "+"},
        {"role": "user", "content": "Step 2: The answer is 5."},
        {"role": "assistant", "content": "+"},
    ]
}
PRM800K = {
    "question": {"problem": Q, "ground_truth_answer": "5"},
    "label": {
        "steps": [
            {"completions": [{"text": "3 + 2 = 5.", "rating": 1}], "chosen_completion": 0},
            {
                "completions": [{"text": "Then 5 - 1 = 4.", "rating": -1}, {"text": "So 5.", "rating": 0}],
                "chosen_completion": None,
            },
        ],
        "finish_reason": "found_error",
    },
}
VALID = {"math-shepherd": MATH_SHEPHERD, "rlhflow": RLHFLOW, "prm800k": PRM800K}


def write(tmp_path, rows) -> str:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return str(path)


def test_math_shepherd_rows(tmp_path):
    (r,) = import_rollouts(write(tmp_path, [MATH_SHEPHERD]), "math-shepherd")
    assert r.problem.question == Q and r.steps == ["Step 1: She buys 2, so 3 + 2 = 5.\n\n", "Step 2: The answer is 6."]
    assert r.labels == [True, False] and r.outcome is False
    assert all_targets([r], TargetSpec("exact")) == [[1.0, 0.0]]


def test_rlhflow_conversations(tmp_path):
    (r,) = import_rollouts(write(tmp_path, [RLHFLOW]), "rlhflow")
    assert r.problem.question == Q and r.steps == ["Step 1: 3 + 2 = 5.\n\n", "Step 2: The answer is 5."]
    assert r.labels == [True, True] and r.outcome is True


def test_prm800k_takes_chosen_steps_then_the_error(tmp_path):
    (r,) = import_rollouts(write(tmp_path, [PRM800K]), "prm800k")
    assert r.steps == ["3 + 2 = 5.\n\n", "Then 5 - 1 = 4."] and r.labels == [True, False]
    assert r.problem.answer == "5"


@pytest.mark.parametrize(
    "fmt,row,message",
    [
        ("math-shepherd", {"input": "no steps here ки", "label": "no steps here +"}, "Step 1"),
        ("rlhflow", {"conversations": [{"role": "user", "content": f"{Q} Step 1: x"}]}, "alternating"),
        ("prm800k", {"question": {"problem": Q}}, "KeyError"),
    ],
)
def test_malformed_rows_name_their_line(tmp_path, fmt, row, message):
    with pytest.raises(ValueError, match=rf"rows.jsonl:2: not a {fmt} row .*{message}"):
        import_rollouts(write(tmp_path, [VALID[fmt], row]), fmt)


def test_cli_import(tmp_path):
    out = tmp_path / "out.jsonl"
    args = ["prm", "import", write(tmp_path, [RLHFLOW, RLHFLOW]), "--format", "rlhflow", "--out", str(out)]
    done = subprocess.run([sys.executable, "-m", "tdrm_search", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(read_rollouts(out)) == 2 and "4 labelled steps" in done.stdout
