"""Check the grader on real data and write benchmarks/results/grading_check.json.

MATH-500: the boxed answer extracted from each reference solution must be equivalent to the row's `answer`
(also reported: math-verify alone, without the exact-string shortcut, as a diagnostic), and so must the answer
the math_verify extraction policy (MATH's default) reads from the whole solution.
GSM8K: each "#### N" answer must grade equal to itself written as "N", "N.0" and "$N", and the strict and
flexible policies (GSM8K's default pair) must read N from each reference solution.

    python benchmarks/grading_check.py [--data DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tdrm_search.datasets import read_jsonl
from tdrm_search.extraction import extract
from tdrm_search.grading import extract_answer, grade, is_equivalent, math_equal

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
GSM8K_FORMS = ("{}", "{}.0", "${}")


@dataclass
class CheckResult:
    """Pass rate of one check, with each miss and why."""

    name: str
    total: int = 0
    passed: int = 0
    misses: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.passed / self.total if self.total else float("nan")


def math500_cases(path: Path, equal: Callable[[str, str], bool] = is_equivalent) -> Iterator[tuple[str, bool, dict]]:
    """(row id, passed, miss details) per MATH-500 row: extracted boxed answer versus the answer field."""
    for _, row in read_jsonl(path):
        extracted = extract_answer(row["solution"])
        ok = extracted is not None and equal(extracted, row["answer"])
        yield row["unique_id"], ok, {"extracted": extracted, "answer": row["answer"]}


def gsm8k_cases(path: Path) -> Iterator[tuple[str, bool, dict]]:
    """(line, passed, miss details) per GSM8K row: the "#### N" answer against N, N.0 and $N."""
    for lineno, row in read_jsonl(path):
        gold = extract_answer(row["answer"])
        failed = [
            form.format(gold)
            for form in GSM8K_FORMS
            if not (gold and grade(f"The answer is {form.format(gold)}.", gold))
        ]
        yield f"line {lineno}", not failed, {"gold": gold, "failed_forms": failed}


def extraction_cases(
    path: Path, policy: str, text_field: str, gold: Callable[[dict], str | None]
) -> Iterator[tuple[str, bool, dict]]:
    """(line, passed, miss details) per row: the answer `policy` reads from the row's `text_field` against its gold."""
    for lineno, row in read_jsonl(path):
        found, reference = extract(row[text_field], policy), gold(row)
        ok = found.answer is not None and is_equivalent(found.answer, reference)
        yield f"line {lineno}", ok, {"extracted": found.answer, "reason": found.reason, "gold": reference}


def run_check(name: str, cases: Iterator[tuple[str, bool, dict]]) -> CheckResult:
    result = CheckResult(name)
    start = time.perf_counter()
    for case_id, ok, details in cases:
        result.total += 1
        result.passed += ok
        if not ok:
            result.misses.append({"id": case_id, **details})
    result.seconds = round(time.perf_counter() - start, 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "grading_check.json")
    args = parser.parse_args()
    checks = [
        run_check("math500_boxed_vs_answer", math500_cases(args.data / "math500_test.jsonl")),
        # diagnostic: math-verify alone, without is_equivalent's exact-string shortcut
        run_check("math500_math_verify_only", math500_cases(args.data / "math500_test.jsonl", math_equal)),
        run_check("gsm8k_answer_forms", gsm8k_cases(args.data / "gsm8k_test.jsonl")),
        run_check(
            "math500_math_verify_extraction",
            extraction_cases(args.data / "math500_test.jsonl", "math_verify", "solution", lambda row: row["answer"]),
        ),
        *(
            run_check(
                f"gsm8k_{policy}_extraction",
                extraction_cases(
                    args.data / "gsm8k_test.jsonl", policy, "answer", lambda row: extract_answer(row["answer"])
                ),
            )
            for policy in ("strict", "flexible")
        ),
    ]
    report = {check.name: {**asdict(check), "rate": round(check.rate, 4)} for check in checks}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    for check in checks:
        print(f"{check.name}: {check.passed}/{check.total} = {check.rate:.2%} in {check.seconds} s")
        for miss in check.misses:
            print("  miss:", miss)


if __name__ == "__main__":
    main()
