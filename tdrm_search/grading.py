"""Grading: a response's final answer (`tdrm_search.extraction`) against a reference, by mathematical equivalence
(math-verify on sympy), safe in threads and processes.

math-verify's own timeouts use SIGALRM, which works only in the main thread: they are switched off here.
Time is bounded instead by `input_problem` (`tdrm_search.input_guard`: refuses over-long, over-nested and
giant-number inputs before sympy sees them) and, where a hard bound is needed, by a `GradingPool`: N worker
processes that compare answers in parallel, each comparison bounded by its own time (a worker that runs past it is
killed and replaced). `check_equivalent` and `check_all` use the process-wide pool (`use_workers` sizes it).
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING

from tdrm_search.extraction import ENGINE_POLICY, extract, extract_answer
from tdrm_search.input_guard import input_problem

if TYPE_CHECKING:
    import pebble

__all__ = [
    "GradingPool",
    "GradingTimeout",
    "check_all",
    "check_equivalent",
    "extract_answer",
    "grade",
    "input_problem",
    "is_equivalent",
    "math_equal",
    "use_workers",
]
log = logging.getLogger(__name__)


class GradingTimeout(Exception):
    """A comparison ran past its time limit (its worker process was killed)."""


# ---------------------------------------------------------------- equivalence


def _parse(answer: str) -> list:
    """math-verify's parse of one answer string, without signal-based timeouts."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    return parse(
        "\\boxed{" + answer + "}",
        extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()],
        parsing_timeout=None,
    )


def is_equivalent(pred: str | None, gold: str | None, timeout_s: float | None = None) -> bool:
    """Whether answer `pred` equals reference `gold` mathematically (math-verify); never raises.

    Inputs refused by `input_problem` give False. With `timeout_s`, the comparison runs in a worker process
    and a timeout also gives False (logged as a warning).
    """
    if timeout_s is not None:
        try:
            return check_equivalent(pred, gold, timeout_s)
        except GradingTimeout as err:
            log.warning("%s", err)
            return False
    return _equivalent(pred, gold)


def _equivalent(pred: str | None, gold: str | None) -> bool:
    if pred is None or gold is None:
        return False
    pred, gold = pred.strip(), gold.strip()
    if not pred or not gold:
        return False
    return pred == gold or math_equal(pred, gold)


def math_equal(pred: str, gold: str) -> bool:
    """math-verify's verdict on two answer strings (no string shortcut), after the input guard; never raises."""
    for name, value in (("prediction", pred), ("gold", gold)):
        problem = input_problem(value)
        if problem is not None:
            log.warning("not grading: %s is refused: %s", name, problem)
            return False
    try:
        from math_verify import verify

        return bool(verify(_parse(gold), _parse(pred), timeout_seconds=None))
    except Exception as err:  # math-verify catches its own errors; this is a last line of defence
        log.debug("grading %r against %r failed: %s: %s", pred, gold, type(err).__name__, err)
        return False


def grade(response: str | None, gold: str | None, timeout_s: float | None = None, policy: str = ENGINE_POLICY) -> bool:
    """Whether the final answer of `response` under extraction `policy` equals `gold`; never raises on a response
    (an unknown policy name is a ValueError)."""
    found = extract(response, policy)
    if found.answer is None:
        log.debug("no final answer: %s", found.reason)
        return False
    return is_equivalent(found.answer, gold, timeout_s)


# ---------------------------------------------------------------- hard time bound: worker processes


def _warm() -> None:
    """Import math-verify and sympy in the worker before it takes a task, so no timeout pays for them."""
    _equivalent("1", "1.0")


def _same(pred: str | None, gold: str | None) -> bool:
    """Identical non-blank strings: equal without asking a worker."""
    return pred is not None and gold is not None and pred.strip() == gold.strip() != ""


class GradingPool:
    """`workers` grading processes (a pebble ProcessPool, spawned: no fork of a threaded process), started on first
    use and shared by every thread. Each comparison has its own hard time bound, counted from when a worker starts
    it: pebble kills and replaces a worker that runs past it, so comparisons run `workers` at a time."""

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError(f"grading workers must be >= 1, got {workers}")
        self.workers = workers
        self._lock = threading.Lock()
        self._pool: pebble.ProcessPool | None = None

    def pool(self) -> pebble.ProcessPool:
        with self._lock:
            if self._pool is None:
                import pebble  # only here: the light grading import needs no pool

                context = multiprocessing.get_context("spawn")
                self._pool = pebble.ProcessPool(max_workers=self.workers, initializer=_warm, context=context)
            return self._pool

    def equivalent(self, pred: str | None, gold: str | None, timeout_s: float) -> bool:
        """`is_equivalent` in a worker, bounded by `timeout_s` seconds; raises GradingTimeout past it."""
        (verdict,) = self.equivalent_all([(pred, gold)], timeout_s)
        if isinstance(verdict, GradingTimeout):
            raise verdict
        return verdict

    def equivalent_all(
        self, pairs: Sequence[tuple[str | None, str | None]], timeout_s: float
    ) -> list[bool | GradingTimeout]:
        """Every (prediction, reference) pair compared at once over the workers, each bounded by `timeout_s`
        seconds; a pair that ran past it (or whose worker died) gives its GradingTimeout instead of a verdict.
        Identical strings are answered here, without a worker."""
        from pebble import ProcessExpired

        futures = [
            None if _same(pred, gold) else self.pool().schedule(_equivalent, args=(pred, gold), timeout=timeout_s)
            for pred, gold in pairs
        ]
        out: list[bool | GradingTimeout] = []
        for (pred, gold), future in zip(pairs, futures, strict=True):
            if future is None:
                out.append(True)
                continue
            what = f"grading {pred!r:.80} against {gold!r:.80}"
            try:
                out.append(bool(future.result()))
            except FutureTimeout:
                out.append(GradingTimeout(f"{what} ran past {timeout_s} s (worker killed)"))
            except ProcessExpired as err:
                out.append(GradingTimeout(f"{what}: the worker died ({err})"))
        return out

    def close(self) -> None:
        """Stop the workers (a later comparison starts them again)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()
            pool.join()


_shared = GradingPool()


def use_workers(workers: int) -> None:
    """Size the process-wide pool that `check_equivalent` uses (default 1 worker); its running workers stop."""
    global _shared
    if workers != _shared.workers:
        old, _shared = _shared, GradingPool(workers)
        old.close()


def check_equivalent(pred: str | None, gold: str | None, timeout_s: float) -> bool:
    """`is_equivalent` in a worker process of the process-wide pool (`use_workers`), bounded by `timeout_s` seconds;
    raises GradingTimeout past it. Identical strings are answered here, without the worker."""
    return _shared.equivalent(pred, gold, timeout_s)


def check_all(pairs: Sequence[tuple[str | None, str | None]], timeout_s: float) -> list[bool]:
    """`check_equivalent` of every pair, compared at once over the process-wide pool's workers; raises the first
    GradingTimeout."""
    verdicts = _shared.equivalent_all(pairs, timeout_s)
    for verdict in verdicts:
        if isinstance(verdict, GradingTimeout):
            raise verdict
    return verdicts
