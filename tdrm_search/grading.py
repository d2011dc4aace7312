"""Final-answer extraction and mathematical equivalence (math-verify on sympy), safe in threads and processes.

math-verify's own timeouts use SIGALRM, which works only in the main thread: they are switched off here.
Time is bounded instead by `input_problem` (refuses over-long, over-nested and giant-number inputs before
sympy sees them) and, where a hard bound is needed, by `check_equivalent`, which runs the comparison in a
worker process that is killed when it runs past its time.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import re
import threading
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pebble

log = logging.getLogger(__name__)
for _name in ("math_verify.parser", "math_verify.grader"):  # we bound time ourselves: drop its one-time reminder
    logging.getLogger(_name).addFilter(lambda record: "Timeout is disabled" not in record.getMessage())

MAX_ANSWER_CHARS = 1000  # longer "answers" are refused (real ones are a few dozen characters)
MAX_NESTING = 24  # depth of {[( nesting
MAX_DIGITS = 2000  # digits of any literal, or of a numeric power / factorial, before sympy would expand it
MAX_EXPONENT = 100_000  # a larger numeric exponent is refused whatever its base
MAX_TOWER = 3  # powers nested in exponents: 2^{2^{2^{2}}} is 3

_BOX = re.compile(r"\\(?:boxed|fbox)\s*(\{)?")
_HASHES = re.compile(r"^\s*####\s*(.+?)\s*$", re.MULTILINE)
_ANSWER_IS = re.compile(r"^.*answer is\s*:?\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)  # last one on a line
_DIGIT_RUN = re.compile(rf"\d{{{MAX_DIGITS + 1},}}")
_FACTORIAL = re.compile(r"(\d+)\s*!")
_EXPONENT = re.compile(r"(?:\^|\*\*)\s*")
_BARE_TOWER = re.compile(rf"(?:(?:\^|\*\*)\s*[\w.]+\s*){{{MAX_TOWER + 1},}}")
_POWER = re.compile(r"(\d+(?:\.\d+)?)\s*\}?\s*(?:\^|\*\*)\s*")


class GradingTimeout(Exception):
    """A comparison ran past its time limit (its worker process was killed)."""


# ---------------------------------------------------------------- extraction


def _braced(text: str, start: int) -> str | None:
    """The content of the brace group opening at text[start] ("{"), or None when it never closes."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
    return None


def _last_boxed(text: str) -> str | None:
    """The content of the last complete \\boxed{...} / \\fbox{...} (or `\\boxed 5`) in text."""
    for match in reversed(list(_BOX.finditer(text))):
        if match.group(1):
            content = _braced(text, match.start(1))
        else:
            content = re.match(r"[^\s$]*", text[match.end() :]).group(0)
        if content is not None:
            return content
    return None


def _clean(answer: str) -> str | None:
    """Strip a sentence's final period, surrounding $...$ and **bold**; None when nothing is left."""
    answer = answer.strip()
    answer = re.sub(r"^\*\*(.*)\*\*$", r"\1", answer).strip()
    answer = answer.removesuffix(".").strip()
    if len(answer) >= 2 and answer.startswith("$") and answer.endswith("$"):
        answer = answer.strip("$").strip()
    return answer.removesuffix(".").strip() or None


def extract_answer(text: str | None) -> str | None:
    """The final answer of a solution: last \\boxed{} / \\fbox{}, else GSM8K's "#### N", else "The answer is ...".

    Returns None when the text holds none of them (or only an empty one).
    """
    if not text:
        return None
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed.strip() or None
    for pattern in (_HASHES, _ANSWER_IS):
        matches = pattern.findall(text)
        if matches:
            return _clean(matches[-1])
    return None


# ---------------------------------------------------------------- input guard


def _nesting(text: str) -> tuple[int, int]:
    """Deepest {[( nesting, and deepest tower of braced exponents (x^{x^{x}} is 2)."""
    stack: list[bool] = []  # per open group: is it an exponent?
    deepest = tower = 0
    previous = ""
    for ch in text:
        if ch in "{[(":
            stack.append(previous == "^")
            deepest = max(deepest, len(stack))
            tower = max(tower, sum(stack))
        elif ch in "}])" and stack:
            stack.pop()
        if not ch.isspace():
            previous = ch
    return deepest, tower


def _exponent_value(text: str) -> float | None:
    """The value of a power's exponent when it is numeric (braced or bare, towers included); None if symbolic."""
    text = text.lstrip()
    if text.startswith("{"):
        group = _braced(text, 0)
        if group is None:
            return None
        inner = group.strip()
        if re.fullmatch(r"\d+(\.\d+)?", inner):
            return float(inner)
        tower = _POWER.match(inner)
        if tower and tower.end() < len(inner):
            return _power_digits(float(tower.group(1)), inner[tower.end() :], as_value=True)
        return None
    number = re.match(r"\d+(\.\d+)?", text)
    if number is None:
        return None
    rest = text[number.end() :]
    if re.match(r"\s*(\^|\*\*)", rest):  # bare tower a**b**c: right-associative
        return _power_digits(float(number.group(0)), re.sub(r"^\s*(\^|\*\*)", "", rest), as_value=True)
    return float(number.group(0))


def _power_digits(base: float, exponent_text: str, as_value: bool = False) -> float | None:
    """Decimal digits of base**exponent (or, with as_value, its value, inf when huge); None when symbolic."""
    exponent = _exponent_value(exponent_text)
    if exponent is None:
        return None
    digits = exponent * math.log10(base) if base > 1 else 0.0
    if not as_value:
        return digits
    return math.inf if digits > 300 else base**exponent


def input_problem(text: str) -> str | None:
    """Why `text` is refused as an answer to compare (too long, too nested, giant number), or None when fine."""
    if len(text) > MAX_ANSWER_CHARS:
        return f"answer longer than {MAX_ANSWER_CHARS} characters ({len(text)})"
    nesting, tower = _nesting(text)
    if nesting > MAX_NESTING:
        return f"nesting deeper than {MAX_NESTING}"
    if tower > MAX_TOWER or _BARE_TOWER.search(text):
        return f"a tower of powers higher than {MAX_TOWER}"
    if _DIGIT_RUN.search(text):
        return f"a number with more than {MAX_DIGITS} digits"
    for match in _FACTORIAL.finditer(text):
        n = int(match.group(1))
        if n > 1000:
            return f"factorial of {n}"
    for match in _EXPONENT.finditer(text):
        exponent = _exponent_value(text[match.end() :])
        if exponent is not None and exponent > MAX_EXPONENT:
            return f"an exponent of about {exponent:.3g}"
    for match in _POWER.finditer(text):
        digits = _power_digits(float(match.group(1)), text[match.end() :])
        if digits is not None and digits > MAX_DIGITS:
            return f"a power with about {digits:.3g} digits"
    return None


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


def grade(response: str | None, gold: str | None, timeout_s: float | None = None) -> bool:
    """Whether the final answer of `response` (see `extract_answer`) equals `gold`; never raises."""
    try:
        pred = extract_answer(response)
    except Exception as err:  # e.g. a non-str response
        log.warning("no answer extracted: %s: %s", type(err).__name__, err)
        return False
    if pred is None:
        log.debug("no final answer found in the response")
        return False
    return is_equivalent(pred, gold, timeout_s)


# ---------------------------------------------------------------- hard time bound: a worker process


def _warm() -> None:
    """Import math-verify and sympy in the worker before it takes a task, so no timeout pays for them."""
    _equivalent("1", "1.0")


class _Worker:
    """One grading process (a pebble pool of one, spawned: no fork of a threaded process) shared by all threads;
    pebble kills and replaces it when a comparison runs past its time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: pebble.ProcessPool | None = None

    def pool(self) -> pebble.ProcessPool:
        with self._lock:
            if self._pool is None:
                import pebble  # only here: the light grading import needs no pool

                context = multiprocessing.get_context("spawn")
                self._pool = pebble.ProcessPool(max_workers=1, initializer=_warm, context=context)
            return self._pool

    def equivalent(self, pred: str | None, gold: str | None, timeout_s: float) -> bool:
        from pebble import ProcessExpired

        future = self.pool().schedule(_equivalent, args=(pred, gold), timeout=timeout_s)
        try:
            return bool(future.result())
        except FutureTimeout:
            raise GradingTimeout(
                f"grading {pred!r:.80} against {gold!r:.80} ran past {timeout_s} s (worker killed)"
            ) from None
        except ProcessExpired as err:
            raise GradingTimeout(f"grading {pred!r:.80} against {gold!r:.80}: the worker died ({err})") from None


_worker = _Worker()


def check_equivalent(pred: str | None, gold: str | None, timeout_s: float) -> bool:
    """`is_equivalent` in a worker process, bounded by `timeout_s` seconds; raises GradingTimeout past it.

    Identical strings are answered here, without the worker.
    """
    if pred is not None and gold is not None and pred.strip() == gold.strip() != "":
        return True
    return _worker.equivalent(pred, gold, timeout_s)
