"""The input guard: refuse answers that would make sympy run for minutes (over-long, over-nested, giant numbers).

`input_problem` says why a text is refused before math-verify parses it; it only scans the text, in linear time
for balanced input.
"""

from __future__ import annotations

import math
import re

MAX_ANSWER_CHARS = 1000  # longer "answers" are refused (real ones are a few dozen characters)
MAX_NESTING = 24  # depth of {[( nesting
MAX_DIGITS = 2000  # digits of any literal, or of a numeric power / factorial, before sympy would expand it
MAX_EXPONENT = 100_000  # a larger numeric exponent is refused whatever its base
MAX_TOWER = 3  # powers nested in exponents: 2^{2^{2^{2}}} is 3

_DIGIT_RUN = re.compile(rf"\d{{{MAX_DIGITS + 1},}}")
_FACTORIAL = re.compile(r"(\d+)\s*!")
_EXPONENT = re.compile(r"(?:\^|\*\*)\s*")
_BARE_TOWER = re.compile(rf"(?:(?:\^|\*\*)\s*[\w.]+\s*){{{MAX_TOWER + 1},}}")
_POWER = re.compile(r"(\d+(?:\.\d+)?)\s*\}?\s*(?:\^|\*\*)\s*")


def braced(text: str, start: int) -> str | None:
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
        group = braced(text, 0)
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


def input_problem(text: str, max_chars: int = MAX_ANSWER_CHARS) -> str | None:
    """Why `text` is refused for math-verify (longer than `max_chars`, too nested, giant number), or None when fine."""
    if len(text) > max_chars:
        return f"longer than {max_chars} characters ({len(text)})"
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
