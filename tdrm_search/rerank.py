"""Offline re-ranking: pass@k, majority@k, best-of-k and PRM-weighted majority@k of precomputed candidates.

Input: JSONL, one problem per line:

    {"id": "p1", "answer": "42",
     "candidates": [{"text": "... The answer is 42.", "score": 0.91, "answer": "42"}, ...]}

`answer` is the reference. Per candidate, `text` is the solution; `answer` (optional) is its final answer,
otherwise extracted from `text` under an extraction policy (`--extract`, default strict: see
`tdrm_search.extraction`); `score` (optional) is its verifier / PRM score, needed for best-of-k and weighted
majority. Answers are grouped by mathematical equivalence before voting, and voting picks exactly as the search
engine does (`aggregate.select`). A problem with fewer than k candidates uses all of them.

With `stop` (`tdrm_search.stopping`), the voting metrics replay the engine's Best-of-N stopping offline: each
k-subset is taken in its order, `wave` candidates at a time, until the rule passes at `confidence`; `samples` is
the mean number of candidates used (pass@k stays over all k).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tdrm_search.aggregate import answer_key, select
from tdrm_search.datasets import read_jsonl
from tdrm_search.extraction import ENGINE_POLICY, check_policies, extract_answer
from tdrm_search.grading import is_equivalent
from tdrm_search.stopping import check_stop, stopping_point
from tdrm_search.types import Trajectory

METRICS = ("samples", "pass", "majority", "best", "weighted_majority")
HEADERS = {"pass": "pass@k", "majority": "maj@k", "best": "best@k", "weighted_majority": "wmaj@k"}  # table column names


@dataclass(frozen=True)
class Stop:
    """The stopping rule a replay applies: "consensus" or "weighted_consensus" at `confidence`, checked every `wave`."""

    rule: str
    confidence: float = 0.95
    wave: int = 4

    def __post_init__(self) -> None:
        check_stop(self.rule, self.confidence, self.wave)

    def used(self, problem: Scored, candidates: list[Trajectory]) -> list[Trajectory]:
        """The leading candidates a search stopping by this rule would have sampled."""
        weights = None
        if self.rule == "weighted_consensus":
            if not problem.has_scores:
                raise ValueError(f"problem {problem.id}: weighted_consensus needs every candidate's score")
            weights = [t.score for t in candidates]
        return candidates[: stopping_point([t.answer for t in candidates], self.confidence, weights, self.wave)]


@dataclass
class Scored:
    """One problem's candidates, answers grouped by equivalence, with whether each group is correct."""

    id: str
    candidates: list[Trajectory]  # answer = its group's representative
    correct: dict[str, bool]  # representative answer -> equals the reference
    has_scores: bool

    def is_correct(self, chosen: Trajectory | None) -> bool:
        return chosen is not None and chosen.answer is not None and self.correct[chosen.answer]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): 1 - C(n-c, k) / C(n, k), with k capped at n."""
    k = min(k, n)
    if n == 0:
        return 0.0
    return 1.0 if n - c < k else 1.0 - math.comb(n - c, k) / math.comb(n, k)


def score_problem(row: dict[str, Any], index: int, policy: str = ENGINE_POLICY) -> Scored:
    """Group a problem's candidate answers (given, or extracted under `policy`) by equivalence and mark which
    groups match the reference."""
    gold = row.get("answer")
    representatives: list[str] = []
    candidates = []
    for cand in row["candidates"]:
        answer = cand.get("answer") or extract_answer(cand.get("text"), policy)
        if answer is not None:
            answer = str(answer)
            answer = next(
                (r for r in representatives if answer_key(r) == answer_key(answer) or is_equivalent(answer, r)), answer
            )
            if answer not in representatives:
                representatives.append(answer)
        score = cand.get("score")
        candidates.append(
            Trajectory([cand.get("text") or ""], [], 0.0 if score is None else float(score), answer, "eos", 0, -1)
        )
    return Scored(
        id=str(row.get("id", index)),
        candidates=candidates,
        correct={r: gold is not None and is_equivalent(r, str(gold)) for r in representatives},
        has_scores=bool(row["candidates"]) and all(c.get("score") is not None for c in row["candidates"]),
    )


def metrics_at_k(
    problem: Scored, k: int, samples: int, rng: random.Random, stop: Stop | None = None
) -> dict[str, float | None]:
    """One problem's metrics at k; voting metrics average over `samples` random k-subsets (1: the first k), each cut
    where `stop` would have stopped."""
    n = len(problem.candidates)
    c = sum(problem.is_correct(t) for t in problem.candidates)
    subsets = (
        [problem.candidates[:k]]
        if samples == 1 or k >= n
        else [rng.sample(problem.candidates, k) for _ in range(samples)]
    )
    if stop is not None:
        subsets = [stop.used(problem, s) for s in subsets]
    out: dict[str, float | None] = {"samples": sum(map(len, subsets)) / len(subsets), "pass": pass_at_k(n, c, k)}
    for metric, how in (("majority", "majority"), ("best", "argmax"), ("weighted_majority", "weighted_majority")):
        if how != "majority" and not problem.has_scores:
            out[metric] = None
        else:
            out[metric] = sum(problem.is_correct(select(s, how)) for s in subsets) / len(subsets)
    return out


def rerank(
    path: str | Path,
    ks: list[int] | None = None,
    samples: int = 1,
    seed: int = 0,
    policy: str = ENGINE_POLICY,
    stop: Stop | None = None,
) -> list[dict[str, Any]]:
    """Mean metrics over the file's problems, one row per k (default: powers of two up to the most candidates),
    candidate answers extracted under `policy`, voting metrics over what `stop` (if given) would have sampled.

    A metric that needs scores is averaged over the problems whose candidates all have one (None if none do).
    """
    check_policies([policy])
    problems = [score_problem(row, lineno, policy) for lineno, row in read_jsonl(path)]
    if not problems:
        raise ValueError(f"{path}: no problems")
    most = max(len(p.candidates) for p in problems)
    ks = ks or [2**i for i in range(most.bit_length()) if 2**i <= most]
    rng = random.Random(seed)
    rows = []
    for k in ks:
        per_problem = [metrics_at_k(p, k, samples, rng, stop) for p in problems]
        row: dict[str, Any] = {"k": k, "problems": len(problems)}
        for metric in METRICS:
            values = [m[metric] for m in per_problem if m[metric] is not None]
            row[metric] = sum(values) / len(values) if values else None
        rows.append(row)
    return rows
