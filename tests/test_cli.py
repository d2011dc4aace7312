"""The `tdrm` command line, run as a user runs it: a real subprocess on the committed lab policy."""

from __future__ import annotations

import subprocess
import sys

import orjson

QUESTION = (
    "Sam has 7 coins. On day 1 he finds 5. On day 2 each coin becomes 3. On day 3 he spends 4. "
    "How many coins after day 3?"
)


def tdrm(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tdrm_search", *args], capture_output=True, text=True, timeout=600, cwd=cwd
    )


def test_search_prints_answer_steps_and_stats(random_prm_dir):
    out = tdrm(
        "search",
        QUESTION,
        "--policy",
        "lab",
        "--prm",
        str(random_prm_dir),
        "--backend",
        "hf",
        "--method",
        "beam",
        "-n",
        "4",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("answer: ")
    assert "best trajectory" in out.stdout and "generated_tokens=" in out.stdout


def test_search_json_is_one_object_with_the_same_fields(random_prm_dir):
    out = tdrm(
        "search",
        QUESTION,
        "--prm",
        str(random_prm_dir),
        "--backend",
        "hf",
        "--method",
        "best_of_n",
        "-n",
        "2",
        "--json",
        "--temperature",
        "0.7",
    )
    assert out.returncode == 0, out.stderr
    result = orjson.loads(out.stdout)
    assert result["method"] == "best_of_n" and result["candidates"] == 2
    assert len(result["best"]["steps"]) == len(result["best"]["step_scores"])
    assert result["stats"]["generate_calls"] == 1


def test_bad_arguments_are_one_line_errors_not_tracebacks(random_prm_dir):
    for args in (["-n", "0"], ["--beam-size", "2"], ["--beam-width", "nonsense"], ["--beam-width", "0"]):
        out = tdrm("search", QUESTION, "--prm", str(random_prm_dir), "--backend", "hf", *args)
        assert out.returncode == 2 and "Traceback" not in out.stderr and "error:" in out.stderr, out.stderr
    out = tdrm("search", QUESTION, "--policy", "/no/such/model", "--backend", "hf")
    assert out.returncode == 2 and "no model folder" in out.stderr


def test_every_registered_subcommand_parses_under_its_entry_point_name():
    from importlib.metadata import entry_points

    from tdrm_search.cli import GROUP, build_parser

    names = {ep.name for ep in entry_points(group=GROUP)}
    (sub,) = (a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == names >= {"search", "rerank", "bench", "demo", "prm", "serve-reward"}


def test_demo_runs_end_to_end_on_a_reduced_size(tmp_path):
    out = tdrm(
        "demo",
        "--problems",
        "4",
        "--budgets",
        "2",
        "--methods",
        "beam",
        "--backend",
        "hf",
        "--prm",
        "oracle",
        "--out",
        str(tmp_path / "demo"),
    )
    assert out.returncode == 0, out.stderr
    assert "greedy decoding:" in out.stdout
    assert (tmp_path / "demo" / "lab_accuracy_vs_budget.png").stat().st_size > 1000
    rows = orjson.loads((tmp_path / "demo" / "summary.json").read_bytes())
    assert {(r["method"], r["n"]) for r in rows} == {("greedy", 1), ("beam", 2)}
