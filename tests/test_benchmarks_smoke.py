"""Every benchmark script runs end to end at its smallest size, as a real subprocess, and leaves a sane report.

Each script writes into this test's temporary folder (its --out / --results / --work options), never into the
committed benchmarks/results/; the last test checks that folder is untouched. Most scripts start a vLLM engine
(about 20-30 s each here), so the runs go two at a time: the module's first test launches every selected run
on a two-worker pool, and each test waits for its own. Every script in benchmarks/ and benchmarks/lab/ is one
case of `test_benchmark_runs` (smollm2_pipeline as `--model lab`: the same stages without the SmolLM2 download;
`smollm2_pipeline[smollm2]` runs the real model when TDRM_SMOKE_REAL_MODEL=1 asks and it is already converted in
TDRM_CACHE). Each case's setup and the checks of what it wrote are in benchmark_checks.py.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from benchmark_checks import (
    check_consensus_stop,
    check_grading,
    check_prefix_reuse,
    check_prm_lab,
    check_prm_pool_eval,
    check_profile_policy,
    check_reward_hacking,
    check_reward_server_load,
    check_rl_lab,
    check_rl_lab_start,
    check_round_overhead,
    check_scale_out,
    check_search_cost,
    check_search_methods,
    check_server_search,
    check_smollm2_pipeline,
    check_train_policy,
    check_value_head_cost,
    labelled_pool,
    real_model_asked,
    shared_data,
    smollm2_converted,
    tiny_data,
    value_prm,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TIMEOUT_S = 300  # per script; the slowest here takes about a minute alone


@dataclass
class Case:
    """One script's smallest run: its argv after `python` ({tmp} is its own folder), setup and checks."""

    args: list[str]
    check: Callable[[Path, str], None]
    setup: Callable[[Path], None] | None = None
    needs: Callable[[], str | None] | None = None  # why the case cannot run here (None: it can)


PY = "benchmarks/{}.py"
CASES: dict[str, Case] = {  # the slowest first: the two workers then finish about together
    "scale_out": Case(
        [PY.format("scale_out"), "--problems", "4", "--batch-size", "2", "--configs", "2x1"]
        + ["--out", "{tmp}/scale_out.json"],
        check_scale_out,
    ),
    "search_cost": Case(
        [PY.format("search_cost"), "--model", "lab", "--problems", "2", "--n", "4", "--repeats", "1"]
        + ["--max-steps", "3", "--accuracy-problems", "2", "--hf-problems", "1", "--results", "{tmp}"],
        check_search_cost,
    ),
    "prm_lab": Case(
        [PY.format("prm_lab"), "--problems", "4", "--k", "2", "--eval-problems", "2", "--pool", "4"]
        + ["--search-problems", "1", "--search-ns", "4", "--epochs", "1", "--td-rounds", "1", "--kinds", "outcome"]
        + ["td0", "--threads", "1", "--work", "{tmp}/work", "--results", "{tmp}/results", "--name", "smoke"],
        check_prm_lab,
    ),
    "value_head_cost": Case(
        [PY.format("value_head_cost"), "--prm", "{tmp}/value-prm", "--problems", "2", "--n", "4"]
        + ["--max-steps", "3", "--results", "{tmp}"],
        check_value_head_cost,
        value_prm,
    ),
    "consensus_stop": Case(
        [PY.format("consensus_stop"), "--problems", "2", "--ns", "4", "--methods", "best_of_n"]
        + ["--confidences", "0.95", "--out", "{tmp}/consensus_stop.json"],
        check_consensus_stop,
    ),
    "grading_check": Case(
        [PY.format("grading_check"), "--data", "{tmp}/data", "--out", "{tmp}/grading_check.json"],
        check_grading,
        tiny_data,
        shared_data,
    ),
    "prefix_reuse": Case(
        [PY.format("prefix_reuse"), "--problems", "2", "--n", "4", "--widths", "1,2"]
        + ["--out", "{tmp}/prefix_reuse.json"],
        check_prefix_reuse,
    ),
    "prm_pool_eval": Case(
        [PY.format("prm_pool_eval"), "{tmp}/eval.jsonl", "lab", "oracle", "--out", "{tmp}/pool_eval.json"],
        check_prm_pool_eval,
        labelled_pool,
    ),
    "reward_hacking": Case(
        ["-m", "benchmarks.reward_hacking", "--problems", "3", "--pads", "0", "2"]
        + ["--out", "{tmp}/reward_hacking.json"],
        check_reward_hacking,
    ),
    "server_search": Case(
        [PY.format("server_search"), "--problems", "2", "--n", "4", "--methods", "beam"]
        + (["--server-cores", "0"] if len(os.sched_getaffinity(0)) > 1 else [])  # the server on a core of its own
        + ["--out", "{tmp}/server_search.json"],
        check_server_search,
    ),
    "reward_server_load": Case(
        ["-m", "benchmarks.reward_server_load", "--requests", "8", "--concurrency", "2", "--queries", "2"]
        + ["--time-limit", "120", "--out", "{tmp}/reward_server_load.json"],
        check_reward_server_load,
    ),
    "rl_lab": Case(
        ["-m", "benchmarks.rl_lab", "--quick", "--rewards", "rule", "--steps", "1", "--seeds", "0"]
        + ["--work", "{tmp}/work", "--out", "{tmp}/rl_lab.json"],
        check_rl_lab,
    ),
    "rl_lab_start": Case(
        ["-m", "benchmarks.rl_lab_start", "--candidates", "noise_0.25", "--problems", "2", "--samples", "2"]
        + ["--work", "{tmp}/work", "--out", "{tmp}/rl_lab_start.json"],
        check_rl_lab_start,
    ),
    "round_overhead": Case(
        [PY.format("round_overhead"), "--problems", "2", "--samples", "2", "--rounds", "2", "--step-tokens", "4"]
        + ["--repeats", "1", "--out", "{tmp}/round_overhead.json"],
        check_round_overhead,
    ),
    "search_methods": Case(
        [PY.format("search_methods"), "--problems", "2", "--budgets", "4", "--methods", "best_of_n", "beam"]
        + ["--runs", "{tmp}/runs", "--out", "{tmp}/search_methods"],
        check_search_methods,
    ),
    "smollm2_pipeline": Case(
        [PY.format("smollm2_pipeline"), "--model", "lab", "--trees", "2", "--k", "2", "--test-problems", "1"]
        + ["--max-tokens", "48", "--work", "{tmp}/work", "--out", "{tmp}/smollm2_pipeline.json"],
        check_smollm2_pipeline,
        needs=shared_data,
    ),
    "smollm2_pipeline[smollm2]": Case(
        [PY.format("smollm2_pipeline"), "--trees", "1", "--k", "2", "--test-problems", "1", "--max-tokens", "48"]
        + ["--work", "{tmp}/work", "--out", "{tmp}/smollm2_pipeline.json"],
        check_smollm2_pipeline,
        needs=lambda: real_model_asked() or shared_data() or smollm2_converted(),
    ),
    "lab/profile_policy": Case(
        ["benchmarks/lab/profile_policy.py", "--num-problems", "4", "--num-samples", "2", "--buckets", "1"]
        + ["--out", "{tmp}/profile.json"],
        check_profile_policy,
    ),
    "lab/train_policy": Case(
        ["benchmarks/lab/train_policy.py", "--steps", "2", "--batch", "4", "--threads", "1"]
        + ["--out", "{tmp}/policy"],
        check_train_policy,
    ),
}


def results_fingerprint() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(RESULTS.iterdir()) if p.is_file()}


def run_case(name: str, tmp: Path) -> tuple[subprocess.CompletedProcess, float]:
    case = CASES[name]
    if case.setup:
        case.setup(tmp)
    argv = [sys.executable, *(a.replace("{tmp}", str(tmp)) for a in case.args)]
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    return done, time.perf_counter() - started


@pytest.fixture(scope="module")
def launched(request, tmp_path_factory):
    """Every selected case, launched at once on two workers (in the order the tests will ask for them)."""
    before = results_fingerprint()
    selected = [
        item.callspec.params["name"]
        for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec")
    ]
    runs: dict[str, tuple[Path, Future]] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for name in selected:
            if name in runs or (CASES[name].needs and CASES[name].needs()):
                continue
            tmp = tmp_path_factory.mktemp(name.replace("/", "_").replace("[", "_").rstrip("]"))
            runs[name] = (tmp, pool.submit(run_case, name, tmp))
        yield {"runs": runs, "results_before": before}
        for _, future in runs.values():
            future.cancel()


@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.parametrize("name", list(CASES))
def test_benchmark_runs(name, launched):
    case = CASES[name]
    if case.needs and (why := case.needs()):
        pytest.skip(why)
    tmp, future = launched["runs"][name]
    done, seconds = future.result()
    print(f"\n{name}: {seconds:.0f} s", flush=True)
    assert done.returncode == 0, f"{name} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    case.check(tmp, done.stdout)


def test_every_benchmark_script_has_a_case():
    """A new script in benchmarks/ or benchmarks/lab/ needs its smallest run here, or it can rot unseen (modules
    that scripts import, such as search_cost_runs, run through their scripts)."""
    scripts = {
        p.relative_to(ROOT / "benchmarks").with_suffix("").as_posix()
        for p in ROOT.glob("benchmarks/**/*.py")
        if 'if __name__ == "__main__":' in p.read_text()  # a script, not a module the scripts import
    }
    covered = {name.split("[")[0] for name in CASES}
    assert scripts == covered, f"no smoke case: {sorted(scripts - covered)}; no script: {sorted(covered - scripts)}"


def test_no_benchmark_wrote_into_the_committed_results(launched):
    for _, future in launched["runs"].values():
        future.exception()  # every launched run has finished
    assert results_fingerprint() == launched["results_before"]
