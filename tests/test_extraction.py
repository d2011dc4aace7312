"""Answer extraction policies: every form, in and out of surrounding text, for the right and the wrong number;
lm-evaluation-harness's flexible rule on its own documented examples; failures that say why and never raise."""

from __future__ import annotations

import time

import pytest
from conftest import shared_data

from tdrm_search.datasets import read_jsonl
from tdrm_search.extraction import POLICIES, ExtractConfig, extract, extract_answer
from tdrm_search.grading import grade, is_equivalent

BEFORE = "Janet's ducks lay 16 eggs per day. She eats 3 and bakes with 4, so 16 - 3 - 4 = 9 are left.\n"
AFTER = "\nLet me know if you have other questions."  # no number: the flexible rule reads the last one

# (response with {} where the number goes, policy, the form that must find it)
FORMS = [
    (r"So she makes $\boxed{{{}}}$ dollars.", "strict", "boxed"),
    (r"\fbox{{{}}}", "strict", "boxed"),
    ("9 * 2 = 18\n#### {}", "strict", "hashes"),
    ("The answer is {}.", "strict", "answer_is"),
    ("The answer is {} dollars.", "strict", "answer_is"),
    ("The answer is ${}.", "strict", "answer_is"),
    ("Final Answer: The final answer is ${}$. I hope it is correct.", "strict", "minerva"),
    ("A: {}", "strict", "answer_line"),
    ("Answer: {}", "strict", "answer_line"),
    ("**Answer:** {}", "strict", "answer_line"),
    ("**Answer: {}**", "strict", "answer_line"),
    ("## Answer: {}", "strict", "answer_line"),
    ("### Final answer: {} dollars", "strict", "answer_line"),
    ("She sells 9 eggs at $2 each, so she makes ${} every day.", "flexible", "last_number"),
    ("9 * 2 = {}", "flexible", "last_number"),
    (r"so she makes $\boxed{{{}}}$ every day.", "math_verify", "math_verify"),
    ("Final Answer: The final answer is ${}$. I hope it is correct.", "math_verify", "math_verify"),
    ("The answer is **{}**.", "math_verify", "math_verify"),
    ("So she makes {} dollars every day.", "math_verify", "math_verify"),
]


@pytest.mark.parametrize("context", [("", ""), (BEFORE, AFTER)], ids=["bare", "in-text"])
@pytest.mark.parametrize(("template", "policy", "form"), FORMS)
def test_each_form_grades_the_right_number_right_and_the_wrong_one_wrong(template, policy, form, context):
    before, after = context
    right = before + template.format("18") + after
    wrong = before + template.format("17") + after
    found = extract(right, policy)
    assert (found.answer, found.form, found.reason) == ("18", form, None)
    assert grade(right, "18", policy=policy)
    assert not grade(wrong, "18", policy=policy)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Answer: 1,000", "1,000"),
        ("A: -3.5", "-3.5"),
        ("The answer is 1,000 people.", "1,000"),
        ("Answer: $\\frac{1}{2}$", r"\frac{1}{2}"),
        ("Answer: x = 3", "x = 3"),
        ("Final Answer: The final answer is $(1,2)$. I hope it is correct.", "(1,2)"),
        ("Answer: Let's think step by step.", None),  # a sentence, not an answer
        ("A: Natalia sold 48/2 = 24 clips in May.", None),
        ("a: 5 and b: 6", None),  # "A:" only in capitals
        (r"empty \boxed{} but the answer is 5", "5"),
        ("The answer is 5 apples and 3 oranges.", "5 apples and 3 oranges"),  # units only after a lone number
    ],
)
def test_strict_marker_details(text, expected):
    assert extract_answer(text, "strict") == expected


def test_strict_is_the_default_and_boxed_beats_other_markers():
    text = "Answer: 3\nThe answer is 4.\n#### 5\n" + r"so \boxed{6}"
    assert extract_answer(text) == extract_answer(text, "strict") == "6"
    assert extract(text.replace(r"so \boxed{6}", "")).form == "hashes"


# lm-evaluation-harness's gsm8k-cot few-shot targets (from Wei et al. 2022), each graded by its flexible-extract
# filter "(-?[$0-9.,]{2,})|(-?[0-9]+)", last match, with "," "$" and a final "." ignored.
LM_EVAL_EXAMPLES = [
    ("There are 15 trees originally. Then there were 21 trees after some more were planted. So there must have "
     "been 21 - 15 = 6. The answer is 6.", "6"),
    ("There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5. The answer is 5.", "5"),
    ("Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = 74. After eating 35, "
     "they had 74 - 35 = 39. The answer is 39.", "39"),
    ("Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she has 23 - 15 dollars "
     "left. 23 - 15 is 8. The answer is 8.", "8"),
    ("Janet sells 16 - 3 - 4 = 9 duck eggs a day. She makes 9 * 2 = $18 every day at the farmer's market.\n#### 18",
     "18"),
    ("The total is $1,450,000.", "1450000"),
    ("She lost -4.5 kg.", "-4.5"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), LM_EVAL_EXAMPLES)
def test_flexible_is_lm_evals_last_number(text, expected):
    assert extract_answer(text, "flexible") == expected
    assert grade(text, expected, policy="flexible")


def test_flexible_takes_the_last_number_even_after_a_marker():
    text = "The answer is 18. Check: 18 / 2 = 9."
    assert (extract_answer(text, "strict"), extract_answer(text, "flexible")) == ("18", "9")


@pytest.mark.parametrize("policy", list(POLICIES))
@pytest.mark.parametrize("response", [None, "", "   \n", 12345, b"#### 18", ["#### 18"], "no answer at all"])
def test_no_answer_says_why_and_never_raises(response, policy):
    found = extract(response, policy)
    assert found.answer is None and found.form is None and found.reason
    assert not grade(response, "18", policy=policy)


def test_unknown_policy_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown extraction policy 'loose'"):
        extract("#### 18", "loose")
    with pytest.raises(ValueError, match="unknown extraction policy"):
        grade("#### 18", "18", policy="loose")


@pytest.mark.parametrize(
    "answer", ["10^{10^{10}}", "9**9**9", "100000!", "1" * 3000, r"\frac{" * 200 + "1" + "}" * 200, "(" * 5000]
)
def test_math_verify_refuses_pathological_responses_fast(answer):
    start = time.perf_counter()
    found = extract(rf"so the answer is $\boxed{{{answer}}}$", "math_verify")
    assert found.answer is None and found.reason.startswith("math_verify: refused")
    assert time.perf_counter() - start < 1.0


def test_math_verify_finds_latex_and_plain_answers_in_its_priority_order():
    assert extract_answer(r"We get $x = 2$ so \boxed{\frac{1}{2}} is it. Also $5$.", "math_verify") == r"\frac{1}{2}"
    assert extract_answer("First 3, then 4, so the final answer is 7. I hope it is correct.", "math_verify") == "7"
    assert extract_answer("The perimeter is $2 \\pi r$.", "math_verify") == r"2 \pi r"
    assert is_equivalent(extract_answer(r"Thus $\dfrac{3}{4}$ of them.", "math_verify"), "0.75")


def test_math_verify_says_what_it_could_not_parse():
    found = extract(r"so \boxed{\sqrt[}", "math_verify")
    assert found.answer is None and found.reason == "math_verify: matched '\\\\sqrt[' but could not parse it"


def test_extract_config():
    assert ExtractConfig().policies(("strict", "flexible")) == ("strict", "flexible")
    assert ExtractConfig("flexible").policies(("strict",)) == ("flexible",)
    assert ExtractConfig(" math_verify, strict ").policies(()) == ("math_verify", "strict")
    for bad in ("loose", "strict,loose", ","):
        with pytest.raises(ValueError, match="extraction policy"):
            ExtractConfig(bad)


def test_math500_reference_solutions_under_math_verify_extraction():
    rows = [row for _, row in read_jsonl(shared_data("math500_test.jsonl"))]
    misses = [r["unique_id"] for r in rows if not grade(r["solution"], r["answer"], policy="math_verify")]
    assert len(rows) == 500 and misses == []


@pytest.mark.parametrize("policy", ["strict", "flexible"])  # math_verify reads "the answer from the previous step"
def test_gsm8k_reference_solutions_under_its_policies(policy):
    rows = [row for _, row in read_jsonl(shared_data("gsm8k_test.jsonl"))]
    golds = [row["answer"].rsplit("####", 1)[1].strip().replace(",", "") for row in rows]
    misses = [g for row, g in zip(rows, golds, strict=True) if not grade(row["answer"], g, policy=policy)]
    assert len(rows) == 1319 and misses == []
