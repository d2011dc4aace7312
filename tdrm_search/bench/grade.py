"""Grading a search result under each of its dataset's extraction policies.

Each dataset is graded under its extraction policies (`Grid.extract`, by default the dataset's own: GSM8K strict
and flexible as lm-evaluation-harness reports it, MATH math-verify's). A record names its primary policy
(`extract`); `answer` and `correct` are that policy's, and `extractions` holds every policy's answer, grades and,
when it found no answer, the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from tdrm_search.aggregate import select
from tdrm_search.ending import final_answer
from tdrm_search.extraction import ENGINE_POLICY, extract
from tdrm_search.grading import GradingTimeout, check_all
from tdrm_search.types import SearchResult


@dataclass(frozen=True)
class Grading:
    """How one grid cell's records are graded: extraction policies (the first is primary), the search's selection
    rule (to choose again under a policy), and the time bound of one comparison."""

    policies: tuple[str, ...]
    selection: str
    timeout_s: float


def result_record(base: dict[str, Any], result: SearchResult, wall_s: float, grading: Grading) -> dict[str, Any]:
    """A finished search as a record, graded under each extraction policy (the first is primary); a grader
    timeout makes it a failed one."""
    stats = dict(result.stats)
    record = {
        **base,
        "status": "ok",
        "error": None,
        "answer": result.answer,
        "score": result.best.score if result.best is not None else None,
        "generated_tokens": int(stats.get("generated_tokens", 0)),
        "wall_s": wall_s,
        "stats": stats,
    }
    try:
        extractions = {
            p: grade_extraction(result, p, grading.selection, base["gold"], grading.timeout_s) for p in grading.policies
        }
    except GradingTimeout as err:
        record.update(status="failed", error=f"grader timeout: {err}", correct=False)
        return record
    primary = extractions[grading.policies[0]]
    record.update(
        answer=primary["answer"],
        correct=primary["correct"],
        majority_correct=primary["majority_correct"],
        pass_correct=primary["pass_correct"],
        extractions=extractions,
    )
    return record


def under_policy(result: SearchResult, policy: str, selection: str) -> SearchResult:
    """`result` as search would have returned it had it read answers under extraction `policy`: each candidate's
    answer read from its text, the choice made again by `selection`. The engine's own policy changes nothing."""
    if policy == ENGINE_POLICY:
        return result
    candidates = [
        replace(t, answer=final_answer(t.steps[-1] if t.steps else "", t.text, policy)) for t in result.candidates
    ]
    best = select(candidates, selection)
    return replace(result, answer=best.answer if best else None, best=best, candidates=candidates)


def grade_extraction(
    result: SearchResult, policy: str, selection: str, gold: str | None, timeout_s: float
) -> dict[str, Any]:
    """One extraction policy's answer and grades of a result, and the reason when it found no answer."""
    seen = under_policy(result, policy, selection)
    if seen.answer is not None:
        reason = None
    elif seen.best is None:
        reason = "the search returned no solution"
    else:
        reason = extract(seen.best.text, policy).reason
    return {"answer": seen.answer, **grade_candidates(seen, gold, timeout_s), "reason": reason}


def grade_candidates(result: SearchResult, gold: str | None, timeout_s: float) -> dict[str, bool | None]:
    """Whether the chosen answer is right, and the no-verifier references on the same candidates: the majority
    answer (self-consistency) and pass (any candidate right). Each distinct answer is graded once, all at once over
    the grading worker processes (`grading.use_workers`)."""
    if gold is None:
        return {"correct": None, "majority_correct": None, "pass_correct": None}
    answers = sorted({t.answer for t in result.candidates if t.answer is not None} | {result.answer} - {None})
    right = dict(zip(answers, check_all([(a, gold) for a in answers], timeout_s), strict=True))
    vote = select(result.candidates, "majority")
    return {
        "correct": bool(right.get(result.answer, False)),
        "majority_correct": vote is not None and bool(right.get(vote.answer, False)),
        "pass_correct": any(right.values()),
    }
