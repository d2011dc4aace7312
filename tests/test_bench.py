"""The bench runner: records, resume (SIGKILL included), failures, summary and plots (grading under extraction
policies: test_bench_grading.py).

`standin_search` is the documented stand-in for the engine's search_batch (same call and result types), so the
runner's record and resume logic is tested without a model; the end-to-end test uses the real engine.
Run as a script (`python tests/test_bench.py OUT`), this file runs a slow bench for the kill test.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from tdrm_search.bench import Grid, RecordLog, plot, record_key, run_bench, summarize
from tdrm_search.tree import Tree
from tdrm_search.types import Problem, SearchResult

REPO = Path(__file__).resolve().parents[1]


def problems(count: int) -> list[Problem]:
    return [Problem(f"q{i}", str(i), f"p{i}", {"level": 1 + i % 2}) for i in range(count)]


def standin_search(batch, policy, prm, method="beam", n=4, seed=0, delay=0.0, answer=None, **options):
    """Answers even-numbered problems right and odd ones wrong (or all with `answer`); raises on a question "boom"."""
    if any(p.question == "boom" for p in batch):
        raise RuntimeError("backend exploded")
    time.sleep(delay * len(batch))
    results = []
    for p in batch:
        chosen = answer or (p.answer if int(p.answer) % 2 == 0 else "-1")
        stats = {"generated_tokens": 10 * n, "prompt_tokens": 5, "wall_s": delay}
        results.append(SearchResult(p, chosen, None, [], Tree.new(p, [0]), stats, method))
    return results


def grid(count: int, **options) -> Grid:
    return Grid({"toy": problems(count)}, ["beam", "best_of_n"], [1, 4], [0], options)


def read(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_records_and_resume(tmp_path):
    out = tmp_path / "results.jsonl"
    records = run_bench(grid(6), out, search_fn=standin_search, batch_size=4, progress=False)
    assert len(records) == 6 * 2 * 2 == len(read(out))
    first = read(out)[0]
    assert first["status"] == "ok" and first["generated_tokens"] == 10 and first["correct"] is True
    assert {"dataset", "id", "method", "n", "seed", "answer", "correct", "score", "wall_s", "stats", "level"} <= set(
        first
    )
    assert [r["correct"] for r in records[:6]] == [True, False] * 3
    calls = []
    run_bench(grid(6), out, search_fn=lambda *a, **k: calls.append(a) or standin_search(*a, **k), progress=False)
    assert calls == [] and len(read(out)) == 24  # all done: nothing re-run, nothing duplicated
    run_bench(Grid({"toy": problems(8)}, ["beam"], [1, 4, 16], [0, 1]), out, search_fn=standin_search, progress=False)
    assert len(read(out)) == 24 + (8 * 3 * 2 - 6 * 2)  # only the new cells ran
    assert read(out)[0]["options"] == {}
    other = Grid({"toy": problems(8)}, ["beam"], [1], options={"stop": "consensus"})
    with pytest.raises(ValueError, match=r"searched with options \{\}, this run's are \{'stop': 'consensus'\}"):
        run_bench(other, out, search_fn=standin_search, progress=False)
    assert len(read(out)) == 24 + (8 * 3 * 2 - 6 * 2)  # refused before anything ran


def test_failing_problem_is_recorded_and_the_run_goes_on(tmp_path, caplog):
    batch = problems(5)
    batch[2] = Problem("boom", "2", "p2")
    with caplog.at_level(logging.WARNING, logger="tdrm_search.bench"):
        records = run_bench(
            Grid({"toy": batch}, ["beam"], [2]),
            tmp_path / "r.jsonl",
            search_fn=standin_search,
            batch_size=4,
            progress=False,
        )
    by_id = {r["id"]: r for r in records}
    assert len(records) == 5
    assert by_id["p2"]["status"] == "failed" and by_id["p2"]["error"] == "RuntimeError: backend exploded"
    assert all(by_id[f"p{i}"]["status"] == "ok" for i in (0, 1, 3, 4))
    assert "retrying one by one" in caplog.text


def test_grader_timeout_is_a_failed_record(tmp_path):
    slow = "e^{e^{e^{10}}}"  # passes the grader's input guard; sympy needs about a second
    records = run_bench(
        Grid({"toy": problems(2)}, ["beam"], [1], options={"answer": slow}),
        tmp_path / "r.jsonl",
        search_fn=standin_search,
        grader_timeout=0.05,
        progress=False,
    )
    assert [r["status"] for r in records] == ["failed", "failed"]
    assert all(r["error"].startswith("grader timeout") and r["correct"] is False for r in records)


def test_torn_last_line_is_cut_and_resumed(tmp_path, caplog):
    out = tmp_path / "r.jsonl"
    run_bench(grid(3), out, search_fn=standin_search, progress=False)
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:-1]) + lines[-1][:17])  # the last record half written
    with caplog.at_level(logging.WARNING, logger="tdrm_search.bench"):
        run_bench(grid(3), out, search_fn=standin_search, progress=False)
    assert "torn last line" in caplog.text
    records = read(out)
    assert len(records) == 12 and len({record_key(r) for r in records}) == 12


def test_a_second_run_on_the_same_file_is_refused(tmp_path):
    with RecordLog(tmp_path / "r.jsonl"):
        with pytest.raises(ValueError, match="in use"):
            RecordLog(tmp_path / "r.jsonl")


def test_sigkill_mid_run_then_resume(tmp_path):
    out = tmp_path / "r.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, __file__, str(out)], env=env)
    try:
        deadline = time.monotonic() + 120
        while (not out.exists() or out.read_bytes().count(b"\n") < 10) and time.monotonic() < deadline:
            assert proc.poll() is None, "the bench subprocess ended early"
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    written = out.read_bytes().count(b"\n")
    assert 10 <= written < 40 * 2 * 2
    records = run_bench(grid(40, delay=0.02), out, search_fn=standin_search, progress=False)  # the same run, resumed
    counts = Counter(record_key(r) for r in records)
    assert len(counts) == 40 * 2 * 2 and max(counts.values()) == 1
    assert len(read(out)) == 160


def test_summary_and_plots(tmp_path):
    records = run_bench(grid(6), tmp_path / "r.jsonl", search_fn=standin_search, progress=False)
    rows = summarize(records)
    assert [(r["method"], r["n"]) for r in rows] == [("beam", 1), ("beam", 4), ("best_of_n", 1), ("best_of_n", 4)]
    assert rows[0]["accuracy"] == 0.5 and rows[1]["mean_tokens"] == 40 and rows[0]["failed"] == 0
    levels = summarize(records, by=("method", "n", "level"))
    assert {(r["level"], r["accuracy"]) for r in levels} == {(1, 1.0), (2, 0.0)}  # even ids are level 1
    paths = plot(rows, tmp_path / "plots")
    assert [p.name for p in paths] == ["toy_accuracy_vs_budget.png", "toy_accuracy_vs_tokens.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)


def test_end_to_end_with_the_engine(tmp_path, capsys):
    """`tdrm bench` on the real engine: embedded lab policy (transformers backend) and the lab's exact checker."""
    from tdrm_search.cli import main
    from tdrm_search.loading import LAB_POLICY

    if not LAB_POLICY.is_dir():
        pytest.skip(f"the embedded lab policy {LAB_POLICY} is not built yet")
    out = tmp_path / "r.jsonl"
    argv = [
        "bench",
        "-d",
        "lab",
        "--limit",
        "3",
        "-m",
        "best_of_n",
        "beam",
        "-n",
        "1",
        "2",
        "--backend",
        "hf",
        "--prm",
        "oracle",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(argv) == 0
    records = read(out)
    assert len(records) == 3 * 2 * 2 and all(r["status"] == "ok" for r in records)
    assert all(r["generated_tokens"] > 0 and isinstance(r["correct"], bool) for r in records)
    assert (tmp_path / "lab_accuracy_vs_budget.png").exists() and (tmp_path / "summary.json").exists()
    assert main(argv) == 0 and len(read(out)) == 12  # resumed: nothing re-run
    assert "accuracy" in capsys.readouterr().out


def test_bench_command_refuses_a_bad_search_option_before_loading_engines(tmp_path, capsys):
    from tdrm_search.cli import main

    out = tmp_path / "r.jsonl"
    argv = ["bench", "-d", "lab", "--limit", "1", "--out", str(out), "--stop", "consensus", "--confidence", "1"]
    assert main(argv) == 2
    shown = capsys.readouterr()
    assert "confidence must lie in (0.5, 1), got 1.0" in shown.err and "loading engines" not in shown.out
    assert not out.exists()  # no failed record to be skipped on resume


if __name__ == "__main__":  # the slow run killed by test_sigkill_mid_run_then_resume
    run_bench(grid(40, delay=0.02), sys.argv[1], search_fn=standin_search, batch_size=1, progress=False)
