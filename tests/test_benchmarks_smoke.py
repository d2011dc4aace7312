"""Every benchmark script runs end to end at its smallest size, as a real subprocess, and leaves a sane report.

Each script writes into this test's temporary folder (its --out / --results / --work options), never into the
committed benchmarks/results/; the last test checks that folder is untouched. Most scripts start a vLLM engine
(about 20-30 s each here), so the runs go two at a time: the module's first test launches every selected run
on a two-worker pool, and each test waits for its own. Every script in benchmarks/ and benchmarks/lab/ is one
case of `test_benchmark_runs` (smollm2_pipeline as `--model lab`: the same stages without the SmolLM2 download;
`smollm2_pipeline[smollm2]` runs the real model when TDRM_SMOKE_REAL_MODEL=1 asks and it is already converted in
TDRM_CACHE).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import SHARED_DATA, tdrm_layout_prm

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


def load(path: Path) -> dict:
    assert path.is_file(), f"{path.name} was not written"
    return json.loads(path.read_text())


# --- setups ---------------------------------------------------------------------------------------------------


def tiny_data(tmp: Path) -> None:
    """The first rows of the shared GSM8K and MATH-500 test files."""
    (tmp / "data").mkdir()
    for name in ("gsm8k_test.jsonl", "math500_test.jsonl"):
        rows = (SHARED_DATA / name).read_text().splitlines(keepends=True)[:25]
        (tmp / "data" / name).write_text("".join(rows))


def labelled_pool(tmp: Path) -> None:
    """A held-out pool as `tdrm prm collect` writes it: per problem the reference solution and wrong variants,
    with exact step labels (no engine needed)."""
    from prm_train.data import Rollout, write_rollouts
    from tdrm_search.tasks.lab import STEP_DELIMITER, generate_problems, grade, reference_solution, step_labels

    rollouts = []
    for problem in generate_problems(3, seed=1):
        steps = reference_solution(problem).split(STEP_DELIMITER)
        wrong_end = [*steps[:-1], "The answer is 0."]
        head, value = steps[0].rsplit(" ", 1)
        wrong_step = [f"{head} {int(value) + 1}", *steps[1:]]
        for variant in (steps, wrong_end, wrong_step, steps):
            text = STEP_DELIMITER.join(variant)
            labels = step_labels(problem, variant)
            tokens = [len(s) for s in variant]
            rollouts.append(Rollout(problem, variant, tokens, grade(problem, text), labels=labels))
    write_rollouts(tmp / "eval.jsonl", rollouts)


def value_prm(tmp: Path) -> None:
    """A random-weight value-head PRM in TDRM's layout, on the lab tokenizer."""
    from tdrm_search.prms.config import PRESETS

    PRESETS["tdrm"].save(tdrm_layout_prm(tmp / "value-prm", seed=1))


def smollm2_converted() -> str | None:
    from tdrm_search.smollm2 import cache_dir

    if (cache_dir() / "smollm2-135m-instruct" / "model.safetensors").is_file():
        return None
    return "SmolLM2 is not converted in TDRM_CACHE (python -m tdrm_search.smollm2 downloads and converts it)"


def real_model_asked() -> str | None:
    """The real-model run takes about two minutes: it runs where TDRM_SMOKE_REAL_MODEL=1 asks for it."""
    if os.environ.get("TDRM_SMOKE_REAL_MODEL") == "1":
        return None
    return "the real SmolLM2 run is opt-in (TDRM_SMOKE_REAL_MODEL=1): about two minutes"


def shared_data() -> str | None:
    return None if SHARED_DATA.is_dir() else f"the shared data folder {SHARED_DATA} is absent"


# --- checks ---------------------------------------------------------------------------------------------------


def check_consensus_stop(tmp: Path, _: str) -> None:
    report = load(tmp / "consensus_stop.json")
    stops = {(r["source"], r["stop"]) for r in report["rows"]}
    assert {("dev", None), ("search", None), ("replay", "consensus"), ("search", "weighted_consensus")} <= stops
    assert set(report["picked_confidence"]) == {"consensus", "weighted_consensus"}
    assert all(r["generated_tokens"] > 0 and 0 <= r["accuracy[argmax]"] <= 1 for r in report["rows"])


def check_grading(tmp: Path, _: str) -> None:
    report = load(tmp / "grading_check.json")
    assert len(report) == 6
    for name, check in report.items():
        assert check["total"] == 25, name
        assert check["rate"] == 1.0, (name, check["misses"])  # every reference answer grades right (full data: 100%)


def check_prefix_reuse(tmp: Path, _: str) -> None:
    rows = load(tmp / "prefix_reuse.json")["rows"]
    assert [r["beam_width"] for r in rows] == [1, 2]
    for r in rows:
        assert r["generated_tokens"] > 0 and 0 <= r["cached_prompt_tokens"] <= r["prompt_tokens"]
    assert rows[1]["cached_prompt_tokens"] > 0  # a beam's children reuse their parent's prompt


def check_prm_lab(tmp: Path, _: str) -> None:
    report = load(tmp / "results" / "smoke.json")
    assert set(report["prms"]) == {"outcome", "td0"}
    for entry in report["prms"].values():
        assert 0 <= entry["summary"]["bon_last@4"]["mean"] <= 1
        assert entry["data_tokens"] > 0
    assert report["oracle"]["summary"]["beam@4"] is not None
    assert (tmp / "results" / "smoke.md").read_text().startswith("# Lab PRM comparison")
    assert (tmp / "results" / "smoke.png").stat().st_size > 0


def check_prm_pool_eval(tmp: Path, _: str) -> None:
    report = load(tmp / "pool_eval.json")
    assert report["pool"] == 12
    assert set(report["prms"]) == {"lab", "oracle"}
    assert report["prms"]["oracle"]["best_of_n"]["last"]["4"] == 1.0  # the checker always picks a right solution
    assert report["majority"]["4"] <= 1.0


def check_reward_hacking(tmp: Path, _: str) -> None:
    report = load(tmp / "reward_hacking.json")
    assert set(report["results"]) == {"arith", "oracle", "lab"}
    assert not report["results"]["oracle"]["clip_delta"]["hacked"]
    assert report["results"]["arith"]["raw_sum"]["hacked"]  # the step-local checker rewards a repeated step


def check_server_search(tmp: Path, _: str) -> None:
    rows = load(tmp / "server_search.json")["rows"]
    runs = {r["run"] for r in rows}
    assert {"in-process lockstep", "remote lockstep", "remote async"} <= runs, runs
    assert all(r["generated_tokens"] > 0 for r in rows if "accuracy" in r)


def check_reward_server_load(tmp: Path, _: str) -> None:
    report = load(tmp / "reward_server_load.json")
    for run in report.get("runs", [report]):  # one run, or one per setting compared
        assert (run["ok"], run["errors"]) == (8, 0), run
        assert run["latency_ms"]["p50"] > 0


def check_rl_lab(tmp: Path, _: str) -> None:
    report = load(tmp / "rl_lab.json")
    (run,) = report["runs"]
    assert (run["reward"], [p["step"] for p in run["curve"]]) == ("rule", [0, 1])
    assert 0 <= report["summary"]["rule"]["final"]["accuracy"] <= 1
    assert all((tmp / f"rl_lab_{m}.png").is_file() for m in ("accuracy", "steps", "tokens", "repeat_share", "reward"))


def check_round_overhead(tmp: Path, _: str) -> None:
    rows = load(tmp / "round_overhead.json")["rows"]
    assert len(rows) == 5
    assert len({r["tokens"] for r in rows}) == 1 and rows[0]["tokens"] == 2 * 2 * 2 * 4  # same tokens in every row


def check_scale_out(tmp: Path, _: str) -> None:
    (row,) = load(tmp / "scale_out.json")["rows"]
    assert (row["replicas"], row["cpus_each"], row["records_equal_first_run"]) == (2, 1, True)
    assert row["problems_per_s"] > 0


def check_search_cost(tmp: Path, _: str) -> None:
    report = load(tmp / "search_cost_lab.json")
    runs = {r["run"] for r in report["rows"]}
    assert {"beam", "mcts", "beam one-call-per-node"} <= runs
    assert {r["run"] for r in report["accuracy"]} == {"beam", "beam one-call-per-node"}
    assert len(report["hf_memory"]) == 2
    assert "## lab" in (tmp / "search_cost.md").read_text()


def check_search_methods(tmp: Path, _: str) -> None:
    report = load(tmp / "search_methods.json")
    cells = {(r["dataset"], r["method"], r["n"]) for r in report["rows"]}
    assert cells == {(f"lab, {v} PRM", m, 4) for v in ("oracle", "shipped") for m in ("best_of_n", "beam")}
    assert all(r["problems"] == 2 for r in report["rows"])


def check_smollm2_pipeline(tmp: Path, _: str) -> None:
    report = load(tmp / "smollm2_pipeline.json")
    assert report["collect"]["rollouts"] > 0 and report["train"]["steps"] > 0
    assert report["search"]["problems"] == 1


def check_value_head_cost(tmp: Path, _: str) -> None:
    report = load(tmp / "value_head_cost.json")
    assert [r["run"] for r in report["rows"]] == ["tdrm HFPRM", "TDRM-style full sequences", "tdrm VLLMPRM"]
    assert report["ratios"]["n=4"]["same_trees_hf_vs_baseline"]
    assert (tmp / "value_head_cost.md").is_file()


def check_profile_policy(tmp: Path, _: str) -> None:
    report = load(tmp / "profile.json")
    assert set(report["by_num_ops"]) == {"1"}
    assert 0 <= report["by_num_ops"]["1"]["greedy"] <= 1


def check_train_policy(tmp: Path, _: str) -> None:
    meta = load(tmp / "policy" / "training_args.json")
    assert meta["steps"] == 2
    assert (tmp / "policy" / "model.safetensors").is_file()


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
