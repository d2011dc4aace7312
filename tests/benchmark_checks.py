"""What each benchmark's smallest run needs before it starts (setups, and why a case cannot run here) and what it
must leave behind (checks): the cases of `test_benchmarks_smoke.py`, one setup or check per script."""

from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import SHARED_DATA, tdrm_layout_prm


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
    assert set(report["collect"]) == {"paths", "eval"}  # path kinds only: no MC completions, no trees collected
    assert not (tmp / "work" / "mc.jsonl").exists() and not (tmp / "work" / "trees.jsonl").exists()
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
    report = load(tmp / "server_search.json")
    rows = report["rows"]
    if report["setup"]["server_cores"] == [0]:  # every thread of the server (API process, engine) ran on core 0 alone
        assert report["setup"]["server_threads_on_cores"] == [0], report["setup"]
    runs = {r["run"] for r in rows}
    assert {"in-process lockstep", "remote lockstep", "remote async"} <= runs, runs
    assert all(r["generated_tokens"] > 0 for r in rows if "accuracy" in r)
    assert all(r["gen_vs_raw"] > 0 for r in rows if r.get("schedule") == "lockstep")  # generation-only ratio
    assert all(r["http_requests"] > 0 for r in rows if r["run"].startswith("remote"))


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


def check_rl_lab_start(tmp: Path, _: str) -> None:
    report = load(tmp / "rl_lab_start.json")
    row = report["candidates"]["noise_0.25"]
    assert report["chosen"] == "noise_0.25" and len(report["chosen_sha256"]) == 64
    assert 0 <= row["greedy"] <= 1 and 0 <= row["mixed_groups"] <= 1 and row["entropy"] > 0, row
    assert (tmp / "work").is_dir()


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
