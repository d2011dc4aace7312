"""Grading: answer extraction, equivalence through math-verify, bounded time, threads, and real data."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import shared_data

from tdrm_search.datasets import read_jsonl
from tdrm_search.grading import GradingTimeout, check_equivalent, extract_answer, grade, input_problem, is_equivalent


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("no answer here", None),
        ("", None),
        (None, None),
        (r"first \boxed{1} then \boxed{2}", "2"),
        (r"so $\boxed{\frac{1}{2}}$.", r"\frac{1}{2}"),
        (r"nested \boxed{\left\{ \frac{a}{b} \right\}}", r"\left\{ \frac{a}{b} \right\}"),
        (r"\fbox{7}", "7"),
        (r"\boxed 5$", "5"),
        (r"complete \boxed{3} then truncated \boxed{\frac{1}{", "3"),
        (r"only unbalanced \boxed{4", None),
        (r"empty \boxed{}", None),
        ("She makes 9 * 2 = $18.\n#### 18", "18"),
        ("#### 1,450,000", "1,450,000"),
        ("Step 1: 3 + 4 = 7.\n\nThe answer is 7.", "7"),
        ("The answer is 3.5.", "3.5"),
        ("the final answer is: $\\frac{3}{4}$.", r"\frac{3}{4}"),
        ("The answer is **12**", "12"),
        ("The answer is 1. Wait, the answer is 2.", "2"),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    ("pred", "gold"),
    [
        ("3/4", r"\frac34"),
        ("0.75", r"\dfrac{3}{4}"),
        (r"\frac{\pi}{2}", r"\pi/2"),
        ("50\\%", "50"),
        ("1,000", "1000"),
        ("2125.0", "2,125"),
        ("$18", "18"),
        (r"\$18", "18"),
        ("(1,2)", "(1, 2)"),
        ("[1,3)", r"[1, 3)"),
        (r"\left( 3, \frac{\pi}{2} \right)", r"(3,\pi/2)"),
        (r"10 \text{ cm}", "10"),
        (r"\text{(C)}", "C"),
        (r"\text{Evelyn}", "Evelyn"),
        ("x=3", "3"),
        (r"2\sqrt{2}", r"\sqrt{8}"),
        ("x^2+1", "1+x^2"),
        (r"\{1,2\}", r"\{2,1\}"),
        ("-5.0", "-5"),
    ],
)
def test_equivalent(pred, gold):
    assert is_equivalent(pred, gold)


@pytest.mark.parametrize(
    ("pred", "gold"),
    [
        ("3", "4"),
        ("0.7", "3/4"),
        ("(1,2)", "[1,2]"),
        ("[1,3)", "[1,3]"),
        (r"(3, \frac{\pi}{2})", r"(\frac{\pi}{2}, 3)"),
        (r"\sqrt{2}", "2"),
        ("x^2-1", "x^2+1"),
        ("Evelyn", "Emily"),
        ("", "1"),
        (None, "1"),
        ("1", None),
        (r"\frac{", "1"),
        ("}}}{{{", "1"),
    ],
)
def test_not_equivalent(pred, gold):
    assert not is_equivalent(pred, gold)


def test_grade_reads_the_final_answer():
    assert grade(r"... so the result is $\boxed{\dfrac{1}{2}}$.", "0.5")
    assert grade("3 + 4 = 7\n\nThe answer is 7.", "7")
    assert not grade("3 + 4 = 8\n\nThe answer is 8.", "7")
    assert not grade("no final answer", "7")
    assert not grade(12345, "7")  # garbage input: False, not an exception


PATHOLOGICAL = [
    "10^{10^{10}}",
    "10^10^10",
    "9**9**9",
    "(10^{300})^{10^{300}}",
    "x^{x^{x^{x^{x}}}}",
    "100000!",
    "1" * 3000,
    r"\frac{" * 200 + "1" + "}" * 200,
    "(" * 5000,
]


@pytest.mark.parametrize("answer", PATHOLOGICAL)
def test_pathological_input_is_refused_fast(answer, caplog):
    assert input_problem(answer) is not None
    start = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="tdrm_search.grading"):
        assert not is_equivalent(answer, "5")
        assert not grade(rf"\boxed{{{answer}}}", "5")
    assert time.perf_counter() - start < 1.0
    assert "refused" in caplog.text


def test_guard_lets_ordinary_powers_through():
    for answer in ["2^{100}", "x^{x^{x}}", r"e^{i\pi}", "10^{6}", "3**4"]:
        assert input_problem(answer) is None
    assert is_equivalent("2^{10}", "1024")


def test_grade_in_worker_threads():
    """math-verify's signal timeouts would raise outside the main thread; ours are off."""
    jobs = [(rf"\boxed{{{i}/4}}", str(i / 4)) for i in range(16)] + [(r"\boxed{10^{10^{10}}}", "1")]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda job: grade(*job), jobs))
    assert results == [True] * 16 + [False]


def test_process_timeout_kills_and_recovers(caplog):
    assert check_equivalent("3/4", "0.75", timeout_s=60)  # starts the worker
    slow = "e^{e^{e^{10}}}"  # passes the input guard; sympy needs about a second
    with pytest.raises(GradingTimeout):
        check_equivalent(slow, "5", timeout_s=0.05)  # cannot answer in time: worker killed
    with caplog.at_level(logging.WARNING, logger="tdrm_search.grading"):
        assert not is_equivalent(slow, "6", timeout_s=0.05)
    assert "ran past" in caplog.text
    assert check_equivalent("3/4", "0.75", timeout_s=60)  # a fresh worker
    assert not check_equivalent("3", "4", timeout_s=60)


def test_math500_boxed_solution_answer_matches_answer_field():
    rows = [row for _, row in read_jsonl(shared_data("math500_test.jsonl"))]
    misses = [
        (row["unique_id"], extract_answer(row["solution"]), row["answer"])
        for row in rows
        if not is_equivalent(extract_answer(row["solution"]), row["answer"])
    ]
    assert len(rows) == 500
    assert misses == []


@pytest.mark.parametrize("form", ["{}", "{}.0", "${}"])
def test_gsm8k_answers_grade_equal_to_their_written_forms(form):
    rows = [row for _, row in read_jsonl(shared_data("gsm8k_test.jsonl"))]
    golds = [extract_answer(row["answer"]) for row in rows]
    misses = [gold for gold in golds if not grade(f"The answer is {form.format(gold)}.", gold)]
    assert len(rows) == 1319
    assert misses == []
