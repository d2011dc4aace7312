"""Offline re-ranking on a small hand-made candidate file with known answers."""

from __future__ import annotations

import json
import math

import pytest

from tdrm_search.cli import main
from tdrm_search.rerank import Stop, pass_at_k, rerank

PROBLEMS = [
    {
        "id": "half",
        "answer": "1/2",
        "candidates": [  # 2 of 5 correct, written two ways
            {"text": r"so \boxed{0.5}", "score": 0.9},
            {"text": r"so \boxed{\frac12}", "score": 0.8},
            {"text": r"so \boxed{3}", "score": 0.95},
            {"text": r"so \boxed{3}", "score": 0.1},
            {"text": r"so \boxed{3}", "score": 0.1},
        ],
    },
    {
        "id": "seven",
        "answer": "7",
        "candidates": [  # no scores: only pass@k and majority@k
            {"text": "3 + 4 = 7\n\nThe answer is 7."},
            {"text": "#### 8"},
            {"text": "no final answer"},
            {"text": "...", "answer": "7.0"},
        ],
    },
]


@pytest.fixture
def candidates(tmp_path):
    path = tmp_path / "candidates.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    return path


def test_pass_at_k_estimator():
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)
    assert pass_at_k(5, 2, 4) == 1.0
    assert pass_at_k(4, 0, 2) == 0.0
    assert pass_at_k(3, 1, 10) == 1.0  # k capped at n


def test_rerank_known_answers(candidates):
    rows = {row["k"]: row for row in rerank(candidates, ks=[1, 2, 4, 5])}
    assert rows[1] == {
        "k": 1,
        "problems": 2,
        "samples": 1.0,
        "pass": pytest.approx(0.45),
        "majority": 1.0,
        "best": 1.0,
        "weighted_majority": 1.0,
    }
    assert rows[2]["pass"] == pytest.approx((0.7 + 1 - 1 / 6) / 2)
    # k=4: "half" ties 2-2 between 1/2 and 3; the engine breaks ties by the best score (3: 0.95) -> wrong.
    # weighted: 1/2 has 1.7 against 1.05. Scored metrics average over "half" only.
    assert rows[4] == {
        "k": 4,
        "problems": 2,
        "samples": 4.0,
        "pass": 1.0,
        "majority": 0.5,
        "best": 0.0,
        "weighted_majority": 1.0,
    }
    assert rows[5]["majority"] == 0.5 and rows[5]["weighted_majority"] == 1.0


def test_rerank_default_ks_and_subsamples(candidates):
    assert [row["k"] for row in rerank(candidates)] == [1, 2, 4]
    first = rerank(candidates, ks=[2], samples=50, seed=1)[0]
    assert first == rerank(candidates, ks=[2], samples=50, seed=1)[0]  # seeded
    assert 0.0 <= first["majority"] <= 1.0 and not math.isclose(first["majority"], 1.0)


def test_rerank_command(candidates, tmp_path, capsys):
    out = tmp_path / "rerank.json"
    assert main(["rerank", str(candidates), "--k", "1", "4", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "pass@k" in table and "wmaj@k" in table and len(table.strip().splitlines()) == 3
    assert [row["k"] for row in json.loads(out.read_text())] == [1, 4]


def test_rerank_extraction_policy(tmp_path, capsys):
    path = tmp_path / "plain.jsonl"
    rows = [{"id": "eggs", "answer": "18", "candidates": [{"text": "so she makes $18 every day."}] * 2}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert rerank(path, ks=[1])[0]["pass"] == 0.0  # strict: no marker, no answer
    assert rerank(path, ks=[1], policy="flexible")[0]["pass"] == 1.0
    assert main(["rerank", str(path), "--k", "1", "--extract", "flexible"]) == 0
    assert "1.0000" in capsys.readouterr().out
    assert main(["rerank", str(path), "--extract", "strict,flexible"]) == 2
    assert "one extraction policy" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown extraction policy"):
        rerank(path, policy="loose")


SETTLING = [
    {
        "id": "settles",
        "answer": "4",
        "candidates": [{"answer": a, "score": s} for a, s in [("4", 0.9)] * 4 + [("5", 0.1)] * 4],
    },
    {  # four low-scored wrong answers first, then four high-scored right ones
        "id": "misleads",
        "answer": "4",
        "candidates": [{"answer": a, "score": s} for a, s in [("5", 0.1)] * 4 + [("4", 0.9)] * 4],
    },
]


def test_rerank_replays_the_consensus_stop(candidates, tmp_path, capsys):
    path = tmp_path / "settling.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in SETTLING))
    full = rerank(path, ks=[8])[0]
    assert full["samples"] == 8.0 and full["majority"] == 1.0  # "misleads" ties 4-4: the better score wins
    # both stop after their first wave of 4 unanimous answers (31/32 >= 0.95): "misleads" keeps its wrong 5
    votes = rerank(path, ks=[8], stop=Stop("consensus"))[0]
    assert votes["samples"] == 4.0 and votes["majority"] == 0.5 and votes["pass"] == 1.0
    # weighted by score: 4 x 0.9 settles (1 - 2**-4.6 >= 0.95), 4 x 0.1 does not (1 - 2**-1.4), nor 3.6 vs 0.4
    weighted = rerank(path, ks=[8], stop=Stop("weighted_consensus"))[0]
    assert weighted["samples"] == 6.0 and weighted["weighted_majority"] == 1.0 and weighted["majority"] == 1.0
    assert rerank(path, ks=[8], stop=Stop("consensus", wave=1, confidence=0.9))[0]["samples"] == 3.0  # 15/16 >= 0.9
    assert main(["rerank", str(path), "--k", "8", "--stop", "consensus"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[2] == "samples" and table[1].split()[2] == "4.0000"
    with pytest.raises(ValueError, match="problem seven: weighted_consensus needs every candidate's score"):
        rerank(candidates, stop=Stop("weighted_consensus"))
