"""The bench runner's grading: each record's answer under the dataset's extraction policies (strict and flexible, as
lm-eval reports GSM8K), the no-verifier references (majority, pass) of its own candidates, a policy choosing again by
the search's selection, and the summary, progress bars and `tdrm bench` refusals that follow from them."""

from __future__ import annotations

import pytest
from test_bench import problems, read

from tdrm_search.bench import Grid, run_bench, summarize
from tdrm_search.bench.grade import grade_candidates, grade_extraction
from tdrm_search.tree import ROOT, Tree
from tdrm_search.types import Problem, SearchResult, Trajectory


def test_records_carry_the_no_verifier_references_of_their_own_candidates():
    def cand(answer, score):
        return Trajectory([answer], [score], score, answer, "answer", 3, 1)

    cands = [cand("3", 0.1), cand("3", 0.2), cand("5", 0.9), cand(None, 0.0)]
    result = SearchResult(Problem("q", "3"), "5", cands[2], cands, Tree.new(Problem("q", "3"), [0]), {}, "best_of_n")
    assert grade_candidates(result, "3", 10.0) == {"correct": False, "majority_correct": True, "pass_correct": True}
    assert grade_candidates(result, "7", 10.0) == {"correct": False, "majority_correct": False, "pass_correct": False}
    assert grade_candidates(result, None, 10.0)["majority_correct"] is None
    rows = summarize(
        [
            {
                "status": "ok",
                "correct": False,
                "majority_correct": True,
                "pass_correct": True,
                "generated_tokens": 1,
                "wall_s": 1.0,
                "method": "m",
                "n": 4,
                "dataset": "d",
            }
        ]
    )
    assert rows[0]["majority@n"] == 1.0 and rows[0]["pass@n"] == 1.0 and rows[0]["accuracy"] == 0.0


def texted_search(batch, policy, prm, method="beam", n=4, seed=0, **options):
    """Each solution states its (right) answer only as the last number of a sentence, as GSM8K models often do."""
    results = []
    for p in batch:
        steps = ["She sells 9 eggs at $2 each.\n\n", f"So she makes ${p.answer} every day."]
        tree = Tree.new(p, [0])
        leaf = tree.add(tree.add(ROOT, [1], steps[0]), [2], steps[1])
        tree.end(leaf, "eos", None)
        best = Trajectory(steps, [0.5, 0.5], 0.5, None, "eos", 20, leaf)  # the engine's strict reading: no answer
        results.append(SearchResult(p, None, best, [best], tree, {"generated_tokens": 20}, method))
    return results


def test_gsm8k_records_strict_and_flexible_as_lm_eval_reports_them(tmp_path):
    records = run_bench(
        Grid({"gsm8k": problems(3)}, ["best_of_n"], [1]), tmp_path / "r.jsonl", search_fn=texted_search, progress=False
    )
    first = read(tmp_path / "r.jsonl")[0]
    assert first["extract"] == "strict" and first["correct"] is False and first["answer"] is None
    strict, flexible = first["extractions"]["strict"], first["extractions"]["flexible"]
    assert strict["answer"] is None and strict["reason"].startswith("no final-answer marker")
    assert flexible == {"answer": "0", "correct": True, "majority_correct": True, "pass_correct": True, "reason": None}
    (row,) = summarize(records)
    assert (row["accuracy"], row["accuracy[strict]"], row["accuracy[flexible]"]) == (0.0, 0.0, 1.0)


def test_the_extraction_policy_can_be_chosen_per_dataset(tmp_path):
    grid = Grid({"toy": problems(2)}, ["beam"], [1], extract={"toy": ("flexible",)})
    records = run_bench(grid, tmp_path / "r.jsonl", search_fn=texted_search, progress=False, trees=1)
    assert [(r["extract"], r["answer"], r["correct"]) for r in records] == [
        ("flexible", "0", True),
        ("flexible", "1", True),
    ]
    (page,) = (tmp_path / "trees").iterdir()  # the picture shows the answer the record grades, not the engine's None
    assert "1 solution(s): answer 0, reference 0" in page.read_text()
    assert list(records[0]["extractions"]) == ["flexible"] and "accuracy[flexible]" not in summarize(records)[0]
    with pytest.raises(ValueError, match="unknown extraction policy 'loose'"):
        Grid({"toy": problems(2)}, ["beam"], [1], extract={"toy": ("loose",)})
    with pytest.raises(ValueError, match="not in the grid"):
        Grid({"toy": problems(2)}, ["beam"], [1], extract={"gsm8k": ("strict",)})


def test_a_policy_chooses_again_by_the_searchs_selection():
    def cand(text, score, answer):  # answer: what the engine's strict reading gave
        return Trajectory([text], [score], score, answer, "eos", 5, 1)

    cands = [
        cand("so she makes $3 a day", 0.2, None),
        cand("she makes $3 daily", 0.3, None),
        cand("The answer is 5.", 0.9, "5"),
    ]
    result = SearchResult(Problem("q", "3"), "5", cands[2], cands, Tree.new(Problem("q", "3"), [0]), {}, "best_of_n")

    def graded(policy: str) -> tuple:
        g = grade_extraction(result, policy, "argmax", "3", 10.0)
        return g["answer"], g["correct"], g["majority_correct"], g["pass_correct"]

    assert graded("strict") == ("5", False, False, False)
    assert graded("flexible") == ("5", False, True, True)
    assert grade_extraction(result, "flexible", "majority", "3", 10.0)["correct"] is True


def test_bench_command_refuses_an_unknown_policy(tmp_path, capsys):
    from tdrm_search.cli import main

    argv = ["bench", "-d", "lab", "--limit", "1", "--out", str(tmp_path / "r.jsonl"), "--extract", "strict,loose"]
    assert main(argv) == 2
    assert "unknown extraction policy 'loose'" in capsys.readouterr().err


def test_one_progress_bar_per_cell_with_each_policys_accuracy(tmp_path, capsys):
    grid = Grid({"gsm8k": problems(2)}, ["beam", "best_of_n"], [1])
    run_bench(grid, tmp_path / "r.jsonl", search_fn=texted_search, progress=True)
    err = capsys.readouterr().err
    assert "gsm8k beam n=1 seed=0" in err and "gsm8k best_of_n n=1 seed=0" in err
    assert "acc[strict]=0.000" in err and "acc[flexible]=1.000" in err
