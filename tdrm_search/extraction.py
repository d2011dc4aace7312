"""Final-answer extraction under named policies, each an ordered list of the answer forms it accepts.

- strict: an explicit final-answer marker; in order, the last \\boxed{} / \\fbox{}, GSM8K's "#### N", Minerva's
  "Final Answer: The final answer is X. I hope it is correct.", "The answer is X", then an "Answer: X" / "A: X"
  line (also in **bold** or under # heading marks) that states a short answer rather than a sentence. The search
  engine ends a path at a step holding one of them (`tdrm_search.ending`).
- flexible: lm-evaluation-harness's flexible-extract rule for GSM8K, the last number in the text, with its
  thousands separators and a leading currency sign dropped (a trailing period or unit word is never part of it).
- math_verify: math-verify's LaTeX then plain-expression extraction (its default configuration for predictions),
  in its priority order: "final answer is ... I hope", \\boxed{}, "answer:", "answer", then the last LaTeX or number.
  The answer is the text of its first match in that order; when that does not parse, math-verify goes on to later
  matches, and the value it parses there is the answer, printed as LaTeX by sympy.

A text answer loses a sentence's period, surrounding $...$ and ** marks, and the unit words after a lone number
("The answer is 18 dollars." gives 18). A failed extraction gives an `Extraction` without an answer that says why;
extraction never raises on a response, only on an unknown policy name.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tdrm_search.input_guard import braced, input_problem

for _name in ("math_verify.parser", "math_verify.grader"):  # time is bounded by the guard: drop its reminder
    logging.getLogger(_name).addFilter(lambda record: "Timeout is disabled" not in record.getMessage())

ENGINE_POLICY = "strict"  # the policy search uses to end paths and give their answers
MAX_RESPONSE_CHARS = 50_000  # math_verify refuses longer responses (a 2048-token solution is about 8,000)

_BOX = re.compile(r"\\(?:boxed|fbox)\s*(\{)?")
_HASHES = re.compile(r"^\s*####\s*(.+?)\s*$", re.MULTILINE)
_MINERVA = re.compile(r"final answer is\s*:?\s*(.+?)\.?\s*I hope it is correct", re.IGNORECASE)
_SENTENCE_END = r"\s*(?:[.!?](?=\s|$)|$)"  # an answer ends with its sentence or its line
_ANSWER_IS = re.compile(rf"^.*answer is\s*:?\s*(.+?){_SENTENCE_END}", re.IGNORECASE | re.MULTILINE)  # last on a line
_ANSWER_LINE = re.compile(
    rf"^[ \t>#*]*(?i:final[ \t]+)?(?:(?i:answer)|A)[ \t]*\**[ \t]*:[ \t]*(.+?){_SENTENCE_END}", re.MULTILINE
)
_PROSE = re.compile(r"[A-Za-z]{2,}\s+[A-Za-z]{2,}")  # two words in a row: a sentence, not an answer
_LONE_NUMBER = re.compile(r"(?:\\?\$|[€£])?\s*(-?\d[\d,]*(?:\.\d+)?)(?:\s+[A-Za-z]{2,}[A-Za-z\s'’/.-]*)?")
_NUMBER = re.compile(r"-?[$€£]?(?:\d(?:[\d,]*\d)?(?:\.\d+)?|\.\d+)")  # lm-eval's flexible-extract, digits required


class NoAnswer(Exception):
    """A form's own reason for finding no answer (the input guard refused the response, nothing parsed)."""


@dataclass(frozen=True)
class Extraction:
    """What a policy found in a response: the answer and the form that gave it, or why there is none."""

    answer: str | None
    form: str | None = None
    reason: str | None = None


# ---------------------------------------------------------------- forms: text -> answer or None


def _boxed(text: str) -> str | None:
    """The content of the last complete \\boxed{...} / \\fbox{...} (or `\\boxed 5`); None when empty."""
    for match in reversed(list(_BOX.finditer(text))):
        if match.group(1):
            content = braced(text, match.start(1))
        else:
            content = re.match(r"[^\s$]*", text[match.end() :]).group(0)
        if content is not None:
            return content.strip() or None
    return None


def _text_answer(answer: str) -> str | None:
    """A marker's text as an answer: period, surrounding $...$ and ** marks dropped, and a lone number's currency
    sign and unit words."""
    previous = None
    while answer != previous:
        previous = answer
        answer = re.sub(r"^\*\*|\*\*$", "", answer.strip().removesuffix(".").strip())
        if len(answer) >= 2 and answer[0] == answer[-1] == "$":
            answer = answer[1:-1]
    number = _LONE_NUMBER.fullmatch(answer)
    return (number.group(1) if number else answer) or None


def _last(pattern: re.Pattern[str]) -> Callable[[str], str | None]:
    """A form: the text answer of the last match of `pattern`."""
    return lambda text: next((a for a in map(_text_answer, reversed(pattern.findall(text))) if a), None)


def _answer_line(text: str) -> str | None:
    """The last "Answer: X" / "A: X" line whose X is an answer, not a sentence."""
    answers = (_text_answer(a) for a in reversed(_ANSWER_LINE.findall(text)))
    return next((a for a in answers if a and not _PROSE.search(a)), None)


def _last_number(text: str) -> str | None:
    """lm-eval's flexible-extract: the last number, thousands separators and currency sign dropped."""
    numbers = _NUMBER.findall(text)
    return re.sub(r"[$€£,]", "", numbers[-1]) if numbers else None


def _math_verify(text: str) -> str | None:
    """math-verify's answer from its LaTeX and expression extraction (see the module doc)."""
    problem = input_problem(text, MAX_RESPONSE_CHARS)
    if problem is not None:
        raise NoAnswer(f"refused: {problem}")
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    def found(mode: str) -> list:
        config = [LatexExtractionConfig(), ExprExtractionConfig()]  # math-verify's default for predictions
        return parse(text, extraction_config=config, extraction_mode=mode, parsing_timeout=None)  # no SIGALRM

    first = found("first_match")  # [value, its text], [text] when it does not parse, or []
    if len(first) == 2:
        return str(first[1]).strip() or None
    if not first:
        return None
    later = found("any_match")  # [value, the first match's text] when a later match parses
    if len(later) < 2:
        raise NoAnswer(f"matched {first[0]!r:.80} but could not parse it")
    from sympy import latex

    return latex(later[0])


FORMS: dict[str, Callable[[str], str | None]] = {
    "boxed": _boxed,
    "hashes": _last(_HASHES),
    "minerva": _last(_MINERVA),
    "answer_is": _last(_ANSWER_IS),
    "answer_line": _answer_line,
    "last_number": _last_number,
    "math_verify": _math_verify,
}


@dataclass(frozen=True)
class Policy:
    """The forms a policy tries, first match wins, and what finding none of them means."""

    forms: tuple[str, ...]
    missing: str


POLICIES: dict[str, Policy] = {
    "strict": Policy(
        ("boxed", "hashes", "minerva", "answer_is", "answer_line"),
        "no final-answer marker (\\boxed{}, '#### N', 'Final Answer: The final answer is', 'The answer is', "
        "an 'Answer:' or 'A:' line)",
    ),
    "flexible": Policy(("last_number",), "no number in the text"),
    "math_verify": Policy(("math_verify",), "math-verify found no LaTeX or expression answer"),
}


def check_policies(names: Sequence[str]) -> tuple[str, ...]:
    """`names` as a tuple, after checking that there is at least one and each is a known policy."""
    if not names:
        raise ValueError(f"no extraction policy given; choose among {list(POLICIES)}")
    for name in names:
        if name not in POLICIES:
            raise ValueError(f"unknown extraction policy {name!r}; choose among {list(POLICIES)}")
    return tuple(names)


def extract(text: object, policy: str = ENGINE_POLICY) -> Extraction:
    """The final answer of a response under `policy` (see the module doc); never raises on the response."""
    (name,) = check_policies([policy])
    if not isinstance(text, str):
        return Extraction(None, reason=f"the response is not text ({type(text).__name__})")
    if not text.strip():
        return Extraction(None, reason="empty response")
    problems = []
    for form in POLICIES[name].forms:
        try:
            answer = FORMS[form](text)
        except NoAnswer as err:
            problems.append(f"{form}: {err}")
            continue
        except Exception as err:  # a parser's bug must not end a run: recorded as the reason
            problems.append(f"{form} failed: {type(err).__name__}: {err}")
            continue
        if answer is not None:
            return Extraction(answer, form)
    return Extraction(None, reason="; ".join(problems) or POLICIES[name].missing)


def extract_answer(text: str | None, policy: str = ENGINE_POLICY) -> str | None:
    """The final answer of `text` under `policy`, or None (`extract` says why)."""
    return extract(text, policy).answer


@dataclass(frozen=True)
class ExtractConfig:
    """Which extraction policies grade a run; the first gives `correct`, each one its own accuracy."""

    extract: str = field(
        default="auto",
        metadata={
            "help": f"answer extraction policy ({', '.join(POLICIES)}), several comma-separated (the first "
            "gives `correct`), or auto: each dataset's own"
        },
    )

    def __post_init__(self) -> None:
        self.policies((ENGINE_POLICY,))

    def policies(self, default: Sequence[str]) -> tuple[str, ...]:
        """The policies named, or `default` (the dataset's own) for "auto"."""
        if self.extract == "auto":
            return check_policies(default)
        return check_policies([name.strip() for name in self.extract.split(",") if name.strip()])
