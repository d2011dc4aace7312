"""Problem loaders: GSM8K, MATH / MATH-500, the lab task, any JSONL, and Hugging Face hub names.

Every loader returns `list[Problem]`. Local files are JSONL; a malformed line is reported (warning, with its
line number) and skipped, and the load goes on. `DATASETS` specifies each named dataset: where the hub keeps it,
how its rows become problems, and how its responses are graded (`extract`, see `tdrm_search.extraction`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tdrm_search.extraction import ENGINE_POLICY, check_policies, extract_answer
from tdrm_search.types import Problem

log = logging.getLogger(__name__)

_GSM8K_ANSWER = re.compile(r"####\s*(.+?)\s*$", re.DOTALL)


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each JSON object line; warn about and skip malformed lines."""
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as err:
                log.warning("%s:%d: skipping malformed JSON line (%s)", path, lineno, err)
                continue
            if not isinstance(obj, dict):
                log.warning("%s:%d: skipping line: expected a JSON object, got %s", path, lineno, type(obj).__name__)
                continue
            yield lineno, obj


def _convert(
    rows: Iterable[tuple[int, dict[str, Any]]], convert: Callable[[dict[str, Any], int], Problem], source: str
) -> list[Problem]:
    """Apply `convert` to each row; a row missing a field is reported with its line number and skipped."""
    problems = []
    for lineno, row in rows:
        try:
            problems.append(convert(row, lineno))
        except (KeyError, TypeError, ValueError) as err:
            log.warning("%s:%d: skipping row (%s: %s)", source, lineno, type(err).__name__, err)
    return problems


def gsm8k_problem(row: dict[str, Any], index: int) -> Problem:
    """A GSM8K row (question, answer = reasoning then "#### N") as a Problem whose answer is N."""
    match = _GSM8K_ANSWER.search(row["answer"])
    if match is None:
        raise ValueError("answer has no '#### N' line")
    return Problem(
        question=row["question"],
        answer=match.group(1).replace(",", ""),
        id=str(row.get("id", f"gsm8k-{index}")),
        meta={"solution": row["answer"]},
    )


def math_problem(row: dict[str, Any], index: int) -> Problem:
    """A MATH / MATH-500 row; without an `answer` field the answer is the solution's (strict extraction: its last
    boxed one)."""
    solution = row.get("solution")
    answer = row.get("answer") or (extract_answer(solution) if solution else None)
    if answer is None:
        raise ValueError("no answer field and no boxed answer in the solution")
    level = row.get("level")
    if isinstance(level, str) and level.startswith("Level "):  # the original MATH release writes "Level 3"
        level = level.removeprefix("Level ")
    return Problem(
        question=row["problem"],
        answer=str(answer),
        id=str(row.get("unique_id") or row.get("id") or f"math-{index}"),
        meta={
            "level": int(level) if isinstance(level, str) and level.isdigit() else level,
            "subject": row.get("subject") or row.get("type"),
            "solution": solution,
        },
    )


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset: its hub source (used when no local path is given), its row converter, and the answer
    extraction policies that grade it (the first gives a record's `correct`)."""

    hub: tuple[str, str | None, str]  # hub path, config, split
    convert: Callable[[dict[str, Any], int], Problem]
    extract: tuple[str, ...]

    def __post_init__(self) -> None:
        check_policies(self.extract)


DATASETS = {
    "gsm8k": DatasetSpec(("openai/gsm8k", "main", "test"), gsm8k_problem, ("strict", "flexible")),  # as lm-eval
    "math500": DatasetSpec(("HuggingFaceH4/MATH-500", None, "test"), math_problem, ("math_verify",)),
    "math": DatasetSpec(("EleutherAI/hendrycks_math", None, "test"), math_problem, ("math_verify",)),
}
HF_SOURCES = {name: spec.hub for name, spec in DATASETS.items()}  # name -> (hub path, config, split)
OTHER_EXTRACT = (ENGINE_POLICY,)  # the lab task, JSONL files and other hub datasets: as search reads answers


def extraction_policies(name: str) -> tuple[str, ...]:
    """The extraction policies that grade dataset `name` by default."""
    spec = DATASETS.get(name.lower())
    return spec.extract if spec is not None else OTHER_EXTRACT


def jsonl_problem(
    question_field: str = "question", answer_field: str | None = "answer", id_field: str | None = "id"
) -> Callable[[dict[str, Any], int], Problem]:
    """A converter for any JSON rows: the named fields become question, answer and id; the rest goes to meta."""

    def convert(row: dict[str, Any], index: int) -> Problem:
        answer = row.get(answer_field) if answer_field else None
        pid = row.get(id_field) if id_field else None
        used = {question_field, answer_field, id_field}
        return Problem(
            question=str(row[question_field]),
            answer=None if answer is None else str(answer),
            id=str(pid) if pid is not None else str(index),
            meta={k: v for k, v in row.items() if k not in used},
        )

    return convert


def filter_problems(
    problems: list[Problem],
    levels: Iterable[int] | None = None,
    subjects: Iterable[str] | None = None,
    limit: int | None = None,
) -> list[Problem]:
    """Keep the problems whose meta level / subject is among those given (case-insensitive), then the first `limit`."""
    if levels is not None:
        wanted_levels = {int(level) for level in levels}
        problems = [p for p in problems if p.meta.get("level") in wanted_levels]
    if subjects is not None:
        wanted_subjects = {s.lower() for s in subjects}
        problems = [p for p in problems if str(p.meta.get("subject", "")).lower() in wanted_subjects]
    return problems if limit is None else problems[:limit]


def _hf_rows(name: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a Hugging Face hub dataset: a known short name, or "hf:owner/name[:config][@split]"."""
    if name in DATASETS:
        hub_path, config, split = DATASETS[name].hub
    else:
        spec, _, split = name.removeprefix("hf:").partition("@")
        hub_path, _, config = spec.partition(":")
        split, config = split or "test", config or None
    try:
        import datasets
    except ImportError as err:
        raise ValueError(
            f"dataset {name!r} without a local path needs the optional `datasets` package "
            "(pip install 'tdrm[hf]'), or pass a JSONL path"
        ) from err
    try:
        data = datasets.load_dataset(hub_path, config, split=split)
    except Exception as err:  # network absent, unknown name, ...: the hub library raises many kinds
        raise ValueError(
            f"could not load {hub_path!r} from the Hugging Face hub ({type(err).__name__}: {err}); "
            "pass a local JSONL path instead"
        ) from err
    return enumerate(data, start=1)


def load_lab(path: str | Path | None = None, limit: int | None = None, seed: int = 0) -> list[Problem]:
    """Lab-task problems: read from a JSONL of problem dicts, or freshly generated (`limit` of them, default 100)."""
    from tdrm_search.tasks import lab

    if path is None:
        return list(lab.generate_problems(100 if limit is None else limit, seed))
    return _convert(read_jsonl(path), lambda row, _: Problem.from_dict(row), str(path))


def load_dataset(
    name: str,
    path: str | Path | None = None,
    limit: int | None = None,
    levels: Iterable[int] | None = None,
    subjects: Iterable[str] | None = None,
    field_map: dict[str, str] | None = None,
    seed: int = 0,
) -> list[Problem]:
    """Load problems by dataset name: "gsm8k", "math", "math500", "lab", "jsonl" (needs `path`), or "hf:owner/name".

    With no `path`, gsm8k / math / math500 / "hf:..." come from the Hugging Face hub (optional `datasets`).
    `field_map` (question_field, answer_field, id_field) maps the fields of a generic JSONL, or of a hub dataset.
    """
    name = name.lower()
    if name == "lab":
        return filter_problems(load_lab(path, limit, seed), levels, subjects, limit)
    if name in DATASETS and not field_map:
        convert = DATASETS[name].convert
    elif name in DATASETS or name == "jsonl" or name.startswith("hf:"):
        convert = jsonl_problem(**(field_map or {}))
    else:
        raise ValueError(
            f"unknown dataset {name!r}: use gsm8k, math, math500, lab, jsonl (with a path) or hf:owner/name"
        )
    if path is not None:
        rows, source = read_jsonl(path), str(path)
    elif name == "jsonl":
        raise ValueError("dataset 'jsonl' needs a path")
    else:
        rows, source = _hf_rows(name), name
    return filter_problems(_convert(rows, convert, source), levels, subjects, limit)
