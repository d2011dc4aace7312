"""Dataset loaders: real GSM8K / MATH-500 files, the lab task, generic JSONL, malformed lines, the dispatcher."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from conftest import shared_data

from tdrm_search.datasets import load_dataset, read_jsonl
from tdrm_search.types import Problem


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_gsm8k_real_file():
    problems = load_dataset("gsm8k", shared_data("gsm8k_test.jsonl"))
    assert len(problems) == 1319
    first = problems[0]
    assert isinstance(first, Problem) and first.answer == "18" and first.question.startswith("Janet")
    assert first.meta["solution"].endswith("#### 18")
    assert all("," not in p.answer for p in problems)  # "#### 1,450,000" -> "1450000"
    assert len({p.id for p in problems}) == 1319


def test_math500_real_file_with_filters():
    path = shared_data("math500_test.jsonl")
    problems = load_dataset("math500", path)
    assert len(problems) == 500
    assert problems[0].id == "test/precalculus/807.json"
    assert problems[0].meta["level"] == 2 and problems[0].meta["subject"] == "Precalculus"
    level5 = load_dataset("math500", path, levels=[5])
    assert level5 and all(p.meta["level"] == 5 for p in level5)
    algebra = load_dataset("math", path, subjects=["algebra"], levels=[1, 2], limit=3)
    assert len(algebra) == 3 and all(p.meta["subject"] == "Algebra" and p.meta["level"] in (1, 2) for p in algebra)


def test_math_answer_falls_back_to_the_boxed_solution(tmp_path):
    rows = [
        {"problem": "1+1?", "solution": r"It is $\boxed{2}$.", "level": "Level 1", "type": "Algebra"},
        {"problem": "no answer", "solution": "none"},
    ]
    path = _write(tmp_path / "math.jsonl", [json.dumps(r) for r in rows])
    problems = load_dataset("math", path)
    assert [(p.answer, p.meta["level"], p.meta["subject"]) for p in problems] == [("2", 1, "Algebra")]


def test_malformed_lines_are_reported_and_skipped(tmp_path, caplog):
    path = _write(
        tmp_path / "bad.jsonl",
        [
            json.dumps({"question": "q1", "answer": "The sum.\n#### 3"}),
            '{"question": "q2", "answer": ',  # line 2: torn
            "[1, 2]",  # line 3: not an object
            "",
            json.dumps({"question": "q5", "answer": "no hashes"}),  # line 5: no #### answer
            json.dumps({"question": "q6", "answer": "#### 7"}),
        ],
    )
    with caplog.at_level(logging.WARNING, logger="tdrm_search.datasets"):
        problems = load_dataset("gsm8k", path)
    assert [p.answer for p in problems] == ["3", "7"]
    assert f"{path}:2:" in caplog.text and f"{path}:3:" in caplog.text and f"{path}:5:" in caplog.text
    assert [lineno for lineno, _ in read_jsonl(path)] == [1, 5, 6]


def test_generic_jsonl_with_field_map(tmp_path):
    path = _write(
        tmp_path / "any.jsonl",
        [json.dumps({"q": f"question {i}", "a": i, "key": f"k{i}", "extra": "x"}) for i in range(5)],
    )
    problems = load_dataset(
        "jsonl", path, field_map={"question_field": "q", "answer_field": "a", "id_field": "key"}, limit=2
    )
    assert problems == [
        Problem("question 0", "0", "k0", {"extra": "x"}),
        Problem("question 1", "1", "k1", {"extra": "x"}),
    ]


def test_lab_generated_and_from_file(tmp_path):
    from tdrm_search.tasks import lab

    generated = load_dataset("lab", limit=4, seed=3)
    assert generated == lab.generate_problems(4, 3)
    path = _write(tmp_path / "lab.jsonl", [json.dumps(p.to_dict()) for p in generated])
    assert load_dataset("lab", path) == generated


def test_dispatcher_errors():
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("nope")
    with pytest.raises(ValueError, match="needs a path"):
        load_dataset("jsonl")


def test_hub_names_without_the_datasets_package_or_network_give_a_clear_error(monkeypatch):
    import importlib.util
    import sys

    if importlib.util.find_spec("datasets") is None:
        with pytest.raises(ValueError, match="optional `datasets` package"):
            load_dataset("gsm8k")
        return
    if "datasets" in sys.modules:
        pytest.skip("`datasets` already imported: its offline switch is read at import time")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no network, as on CI machines without internet
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(ValueError, match="could not load 'openai/gsm8k'.*local JSONL path"):
        load_dataset("gsm8k")


def test_each_dataset_names_its_extraction_policies():
    from tdrm_search.datasets import DATASETS, DatasetSpec, extraction_policies, gsm8k_problem

    assert extraction_policies("gsm8k") == extraction_policies("GSM8K") == ("strict", "flexible")
    assert extraction_policies("math500") == extraction_policies("math") == ("math_verify",)
    assert extraction_policies("lab") == extraction_policies("hf:owner/name") == ("strict",)
    assert {name: spec.hub for name, spec in DATASETS.items()}["gsm8k"] == ("openai/gsm8k", "main", "test")
    with pytest.raises(ValueError, match="unknown extraction policy"):
        DatasetSpec(("x/y", None, "test"), gsm8k_problem, ("loose",))
