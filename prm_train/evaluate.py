"""Evaluate a PRM on rollouts with exact step labels: step AUC, first-error detection (ProcessBench style),
Best-of-N accuracy per aggregation, weighted majority vote, within-problem AUC, and smoothness (mean |ΔV|, mean TD
error, local Lipschitz estimate)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from statistics import fmean

from prm_train.data import Rollout
from prm_train.targets import td0_targets
from tdrm_search.aggregate import AGGREGATIONS, aggregate
from tdrm_search.grading import extract_answer
from tdrm_search.prms.base import PRM, ScoreRequest, check_scores


def auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Area under the ROC curve (Mann-Whitney, ties counted half); None without both classes."""
    pos = sum(labels)
    neg = len(labels) - pos
    if not pos or not neg:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    rank_sum, i = 0.0, 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        mid_rank = (i + j) / 2 + 1
        rank_sum += mid_rank * sum(labels[order[k]] for k in range(i, j + 1))
        i = j + 1
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def within_problem_auc(
    scores: Sequence[float], correct: Sequence[bool], pools: Sequence[Sequence[int]]
) -> float | None:
    """Mean over problems of the AUC of solution scores against outcomes inside each problem's pool: whether the
    PRM ranks a problem's right solutions above its wrong ones (what Best-of-N needs), not which problems are
    hard. Problems whose pool is all right or all wrong are left out; None when none is left."""
    per_problem = [auc([scores[i] for i in pool], [correct[i] for i in pool]) for pool in pools]
    kept = [a for a in per_problem if a is not None]
    return fmean(kept) if kept else None


def first_index(flags: Sequence[bool]) -> int | None:
    return next((t for t, f in enumerate(flags) if f), None)


def first_error_detection(
    values: Sequence[Sequence[float]], labels: Sequence[Sequence[bool]], threshold: float = 0.5
) -> dict[str, float | None]:
    """Predicted first error = first step valued below `threshold`. Accuracy on solutions with an error (exact
    index), on solutions without, and their harmonic mean (ProcessBench's F1)."""
    err, ok = [], []
    for v, lab in zip(values, labels, strict=True):
        truth = first_index([not x for x in lab])
        hit = first_index([x < threshold for x in v]) == truth
        (ok if truth is None else err).append(hit)
    acc_err = fmean(err) if err else None
    acc_ok = fmean(ok) if ok else None
    f1 = (
        2 * acc_err * acc_ok / (acc_err + acc_ok)
        if acc_err is not None and acc_ok is not None and acc_err + acc_ok
        else None
    )
    return {"error_acc": acc_err, "correct_acc": acc_ok, "f1": f1}


def smoothness(values: Sequence[Sequence[float]], rollouts: Sequence[Rollout], gamma: float = 1.0) -> dict[str, float]:
    """mean |V(s_{t+1}) − V(s_t)|; mean TD error |y_t − V(s_t)| with y the TD(0) target from the PRM's own
    values; local Lipschitz estimate: mean |ΔV| per token of the step between the two states."""
    diffs, lips, td = [], [], []
    for v, r in zip(values, rollouts, strict=True):
        for t in range(len(v) - 1):
            d = abs(v[t + 1] - v[t])
            diffs.append(d)
            lips.append(d / max(1, r.step_tokens[t + 1]))
        y = td0_targets(list(v), float(r.outcome), gamma)
        td.extend(abs(a - b) for a, b in zip(y, v, strict=True))
    return {
        "mean_abs_diff": fmean(diffs) if diffs else 0.0,
        "td_error": fmean(td) if td else 0.0,
        "lipschitz_per_token": fmean(lips) if lips else 0.0,
    }


def pools_by_problem(rollouts: Sequence[Rollout]) -> list[list[int]]:
    """Indices of each problem's rollouts, in first-seen order."""
    pools: dict[str, list[int]] = {}
    for i, r in enumerate(rollouts):
        pools.setdefault(r.problem.id or r.problem.question, []).append(i)
    return list(pools.values())


def subsets(pool: Sequence[int], n: int) -> list[Sequence[int]]:
    """Disjoint n-subsets of a problem's pool (the whole pool when it is smaller than n)."""
    if len(pool) < n:
        return [pool]
    return [pool[i : i + n] for i in range(0, len(pool) - n + 1, n)]


def select_accuracy(
    pick: Callable[[Sequence[int]], int], correct: Sequence[bool], pools: Sequence[Sequence[int]], n: int
) -> float:
    """Mean over problems of the accuracy of `pick` over each disjoint n-subset of the problem's pool."""
    return fmean(fmean(correct[pick(s)] for s in subsets(pool, n)) for pool in pools)


def best_of_n(scores: Sequence[float], correct: Sequence[bool], pools: Sequence[Sequence[int]], n: int) -> float:
    """Best-of-n: the top-scored rollout of each subset (ties go to the earlier rollout)."""
    return select_accuracy(lambda s: max(s, key=lambda i: (scores[i], -i)), correct, pools, n)


def majority_of_n(
    answers: Sequence[str | None],
    correct: Sequence[bool],
    pools: Sequence[Sequence[int]],
    n: int,
    weights: Sequence[float] | None = None,
) -> float:
    """Majority vote over final answers of each subset (no verifier); with `weights` (a PRM's solution scores),
    weighted majority: the answer with the largest score sum. Ties go to the answer seen first."""

    def pick(s):
        votes: dict[str, float] = {}
        for i in s:
            if answers[i] is not None:
                votes[answers[i]] = votes.get(answers[i], 0.0) + (1.0 if weights is None else weights[i])
        if not votes:
            return s[0]
        top = max(votes.values())
        return next(i for i in s if answers[i] is not None and votes[answers[i]] == top)

    return select_accuracy(pick, correct, pools, n)


def final_answers(rollouts: Sequence[Rollout]) -> list[str | None]:
    return [extract_answer(r.steps[-1]) for r in rollouts]


def score_rollouts(prm: PRM, rollouts: Sequence[Rollout], chunk: int = 512) -> list[list[float]]:
    """Every step value of every rollout through the PRM's own `score` (length-sorted chunks)."""
    order = sorted(range(len(rollouts)), key=lambda i: sum(rollouts[i].step_tokens))
    values: list[list[float]] = [[] for _ in rollouts]
    for c in range(0, len(order), chunk):
        idx = order[c : c + chunk]
        requests = [ScoreRequest(rollouts[i].problem, tuple(rollouts[i].steps)) for i in idx]
        out = prm.score(requests)
        check_scores(requests, out)
        for i, v in zip(idx, out.scores, strict=True):
            values[i] = list(v)
    return values


def evaluate_values(
    values: Sequence[Sequence[float]], rollouts: Sequence[Rollout], ns: Sequence[int], gamma: float = 1.0
) -> dict:
    """Every metric from precomputed step values (rollouts must carry exact labels for the step metrics)."""
    labelled = [(v, r.labels) for v, r in zip(values, rollouts, strict=True) if r.labels is not None]
    flat_v = [x for v, lab in labelled for x in v]
    flat_l = [x for v, lab in labelled for x in lab]
    pools = pools_by_problem(rollouts)
    correct = [r.outcome for r in rollouts]
    aggregated = {how: [aggregate(v, how) for v in values] for how in AGGREGATIONS}
    bon = {how: {str(n): best_of_n(scores, correct, pools, n) for n in ns} for how, scores in aggregated.items()}
    answers = final_answers(rollouts)
    weighted = {
        how: {str(n): majority_of_n(answers, correct, pools, n, aggregated[how]) for n in ns} for how in ("last", "min")
    }
    return {
        "step_auc": auc(flat_v, flat_l),
        "within_problem_auc": {how: within_problem_auc(scores, correct, pools) for how, scores in aggregated.items()},
        "first_error": first_error_detection([v for v, _ in labelled], [lab for _, lab in labelled]),
        "best_of_n": bon,
        "weighted_majority": weighted,
        "smoothness": smoothness(values, rollouts, gamma),
        "steps": len(flat_v),
        "rollouts": len(rollouts),
        "problems": len(pools),
    }


def evaluate_prm(prm: PRM, rollouts: Sequence[Rollout], ns: Sequence[int] = (4, 16, 64), gamma: float = 1.0) -> dict:
    return evaluate_values(score_rollouts(prm, rollouts), rollouts, ns, gamma)
