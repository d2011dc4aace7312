"""GRPO on the lab with PRM rewards, from a starting policy with room to improve (issues 18 and 32): does rule-only
RL gain, does TDRM's 0.2 PRM + 0.8 rule mix (arXiv 2509.15110) need fewer prompts to reach rule-only's final
accuracy (with a TD-target PRM, and with an MC-label PRM of the same backbone and labelling compute), and does a
summed PRM reward get hacked (longer, repeated steps), which Clip / Delta (arXiv 2410.15115) should stop?

Every run starts from the RL lab's own start policy (`benchmarks/rl_lab_start.py`: the shipped lab policy with
noise on its weights, greedy 0.43 and pass@8 0.70 on the evaluation problems; the shipped policy stays for search)
and trains with TRL's GRPOTrainer on CPU on the same prompts in the same order; only the reward and the sampling
seed differ (`rl_bridge/lab_grpo.py`). Rewards:

    rule          1 for a right final answer, else 0;
    raw_prm       the TD PRM's step values summed (the hackable return of 2410.15115); rule_raw_prm: rule + that sum;
    clip, delta, clip_delta   rl_bridge's refinements (rule included), summed over steps (GRPO takes one scalar);
    mix_td, mix_mc  TDRM's mix, 0.2 * PRM value (last step) + 0.8 * rule, with the TD PRM / with the MC PRM.

The TD (td0) and MC (mc_soft) PRMs come from one run of the prm_lab pipeline (`benchmarks/prm_lab.py`, the same
backbone and labelling compute), built once under --work. Every --eval-every steps the policy solves the held-out
problems greedily and we record accuracy and the hacking probe's measures (steps and tokens per solution, the share
with a repeated/unnecessary step, the run's own reward per step); the same probe runs on every training batch.

    python -m benchmarks.rl_lab --prepare           # build the start policy and the PRM pair (~45 min, once)
    python -m benchmarks.rl_lab --plan              # the estimated time of every run still to do
    python -m benchmarks.rl_lab [--budget-minutes 90]   # run what is left (within the budget), then the report
    python -m benchmarks.rl_lab --quick             # the whole pipeline in a few minutes (results in --work)

Each finished (reward, seed) run is its own JSON under --runs (default benchmarks/results/rl_lab_runs/); a rerun
skips the finished ones, so the benchmark can be split over sessions. The report (finished runs only) goes to
--out (default benchmarks/results/rl_lab.json; rl_lab_partial.json while runs are pending) with one PNG per metric
beside it, and prints the table and each
claim's verdict (`benchmarks/rl_lab_report.py`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from statistics import fmean

import torch

from benchmarks.rl_lab_prms import PRM_PAIR_MINUTES, pair_dirs, pair_ids, prm_lab, prm_pair
from benchmarks.rl_lab_report import claims, plot, summarise, table, verdict_lines
from benchmarks.rl_lab_start import CHOSEN, start_policy
from rl_bridge.lab_grpo import REWARDS, Probed, Setting, evaluate, make_reward, trainer_for
from tdrm_search.loading import load_prm
from tdrm_search.tasks.lab import generate_problems
from tdrm_search.types import Problem

RESULTS = Path(__file__).parent / "results"
log = logging.getLogger(__name__)
FULL = Setting(steps=200, batch=32, generations=8, eval_problems=100, eval_every=10)  # 800 prompts: 5x issue 18
QUICK = Setting(steps=3, batch=16, generations=8, eval_problems=20, eval_every=3)
SEEDS = {"rule": 3, "mix_td": 3, "mix_mc": 3, "raw_prm": 3, "rule_raw_prm": 2, "clip": 2, "delta": 2, "clip_delta": 2}


TRAIN_KEYS = ("reward", "completions/mean_length", "entropy", "frac_reward_zero_std", "step_time")


def run(name: str, reward, seed: int, setting: Setting, policy: Path, eval_problems: list[Problem], work: Path) -> dict:
    """One GRPO run: its evaluation curve, the trainer's per-step log (probe included) and its timing."""
    from transformers import TrainerCallback

    curve: list[dict] = []
    eval_seconds = [0.0]

    class Evaluate(TrainerCallback):
        def record(self, step: int, model, processing_class) -> None:
            started = time.perf_counter()
            point = evaluate(model, processing_class, eval_problems, reward, setting.max_tokens)
            eval_seconds[0] += time.perf_counter() - started
            curve.append({"step": step, "prompts": step * setting.prompts_per_step, **point})
            log.info("%s seed %d step %d: %s", name, seed, step, point)

        def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
            self.record(0, model, processing_class)

        def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
            if state.global_step % setting.eval_every == 0 or state.global_step == setting.steps:
                self.record(state.global_step, model, processing_class)

    started = time.perf_counter()
    trainer = trainer_for(Probed(reward), setting, seed, str(work / f"{name}_seed{seed}"), policy=policy)
    trainer.add_callback(Evaluate())
    trainer.train()
    train_log = []
    for e in trainer.state.log_history:
        if f"rewards/{name}/mean" in e:
            keep = {
                k.split("/")[-1] if k.startswith("probe/") else k: v for k, v in e.items() if k.startswith("probe/")
            }
            keep |= {k: e.get(k) for k in TRAIN_KEYS[1:]}
            train_log.append({"step": e["step"], "reward": e[f"rewards/{name}/mean"], **keep})
    seconds = time.perf_counter() - started
    timing = {"seconds": round(seconds, 1), "eval_seconds": round(eval_seconds[0], 1), "evaluations": len(curve)}
    return {"reward": name, "seed": seed, "curve": curve, "train": train_log, **timing}


def plan_runs(rewards: list[str], seeds: list[int] | None) -> list[tuple[str, int]]:
    """(reward, seed) pairs, seed-major (every reward's seed 0 first) so a partial run still compares rewards; the
    extra seeds of the rewards with fewer than 3 (SEEDS) come last, the first to give way to a time budget."""
    per = {r: seeds if seeds is not None else list(range(SEEDS[r])) for r in rewards}
    pairs = [(r, s) for s in sorted({s for v in per.values() for s in v}) for r in rewards if s in per[r]]
    return sorted(pairs, key=lambda p: p[1] > 0 and seeds is None and SEEDS[p[0]] < 3)


def identity(name: str, setting: Setting, prms: dict) -> dict:
    """What a finished run must match to be reused: the setting, the start policy, and the PRMs it was scored by."""
    return {"setting": asdict(setting), "start_policy": CHOSEN, "prms": {} if name == "rule" else prms}


def finished(path: Path, ident: dict) -> dict | None:
    data = json.loads(path.read_text()) if path.exists() else None
    return data if data is not None and all(data.get(k) == v for k, v in ident.items()) else None


def split_finished(
    todo: list[tuple[str, int]], runs_dir: Path, setting: Setting, prm_names: dict
) -> tuple[list[dict], list[tuple[str, int]]]:
    """The finished runs among `todo` (their JSON under `runs_dir`, same setting, start policy and PRMs), and the
    (reward, seed) pairs still to run."""
    done: list[dict] = []
    left: list[tuple[str, int]] = []
    for name, seed in todo:
        cached = finished(runs_dir / f"{name}_seed{seed}.json", identity(name, setting, prm_names))
        if cached:
            done.append(cached)
        else:
            left.append((name, seed))
    return done, left


def estimate(setting: Setting, done: list[dict]) -> dict[str, float]:
    """Estimated seconds of one run of each reward, from the first finished run of it found: its fixed cost (model and
    trainer set-up), its mean seconds per training step (TRL's step_time, where logged) and per evaluation, scaled
    to the setting; `_prm`: the dearest PRM reward measured."""
    per_run: dict[str, float] = {}
    for r in done:
        steps = max(1, r["curve"][-1]["step"])
        times = [float(e["step_time"]) for e in r["train"] if e.get("step_time") is not None]
        per_step = fmean(times) if times else (r["seconds"] - r["eval_seconds"]) / steps
        fixed = max(0.0, r["seconds"] - r["eval_seconds"] - per_step * steps)
        per_eval = r["eval_seconds"] / r["evaluations"]
        evals = setting.steps // setting.eval_every + 1 + (setting.steps % setting.eval_every > 0)
        per_run.setdefault(r["reward"], fixed + per_step * setting.steps + per_eval * evals)
    prm_costs = [v for k, v in per_run.items() if k != "rule"]
    return per_run | ({"_prm": max(prm_costs)} if prm_costs else {})


def measured_cost(setting: Setting, work: Path, policy: Path) -> list[dict]:
    """Four-step runs of rule and clip_delta (scored by the shipped lab PRM, the pair's architecture: a 4-layer lab
    LM) in this setting, for --plan before any run has finished; each cached in `work` as it finishes."""
    cache = work / "plan_cost.json"
    short = replace(setting, steps=4, eval_every=4)
    cached = json.loads(cache.read_text()) if cache.exists() else {}
    if cached.get("setting") != asdict(short):
        cached = {"setting": asdict(short), "runs": {}}
    problems = generate_problems(setting.eval_problems, seed=setting.eval_seed, num_ops=setting.num_ops)
    for name in ("rule", "clip_delta"):
        if name not in cached["runs"]:
            prms = {"td": load_prm(None, backend="hf")}
            cached["runs"][name] = run(name, make_reward(name, prms), 0, short, policy, problems, work / "plan")
            cache.write_text(json.dumps(cached) + "\n")
    return list(cached["runs"].values())


def costs(setting: Setting, done: list[dict], work: Path, policy: Path) -> dict[str, float]:
    """Estimated seconds of a run of each reward: from the finished runs, else from the short measurement."""
    cost = estimate(setting, done)
    if "rule" not in cost or "_prm" not in cost:
        cost = estimate(setting, measured_cost(setting, work, policy)) | cost
    return cost


def guess_seconds(cost: dict[str, float], name: str) -> float:
    """A run's estimate: its reward's own, else rule's (rule) or the dearest PRM reward's."""
    return cost.get(name, cost["rule" if name == "rule" else "_prm"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few minutes: 3 steps of 2 prompts, 20 eval problems")
    parser.add_argument("--plan", action="store_true", help="print each run still to do and its estimated time")
    parser.add_argument("--rewards", nargs="+", default=list(REWARDS), choices=REWARDS)
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds for every reward (default: SEEDS; --quick: 0)")
    parser.add_argument("--steps", type=int, help="GRPO steps (overrides the setting's)")
    parser.add_argument("--budget-minutes", type=float, help="start no run whose estimate exceeds what is left")
    parser.add_argument("--prm-base", type=Path, help="the PRMs' backbone (default: built under --work)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--work", type=Path, default=Path("/tmp/tdrm_rl_lab"))
    parser.add_argument("--runs", type=Path, help="finished runs' folder (default: results/rl_lab_runs; quick: work)")
    parser.add_argument("--prepare", action="store_true", help="build the start policy and the PRM pair, then stop")
    parser.add_argument("--out", type=Path, help="the report (default: results/rl_lab[_partial].json; quick: --work)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    setting = replace(QUICK if args.quick else FULL, **({"steps": args.steps} if args.steps else {}))
    work = args.work / ("quick" if args.quick else "full")
    runs_dir = args.runs or (work / "runs" if args.quick else RESULTS / "rl_lab_runs")
    for d in (work, runs_dir):
        d.mkdir(parents=True, exist_ok=True)
    todo = plan_runs(args.rewards, args.seeds if args.seeds or not args.quick else [0])
    dirs = pair_dirs(args.work, args.quick)
    policy = start_policy(args.work / "start")
    done, left = split_finished(todo, runs_dir, setting, pair_ids(dirs))
    if args.plan:
        cost = costs(setting, done, work, policy)
        print_plan(setting, done, left, cost, built=all(prm_lab().trained(d) for d in dirs.values()))
        return
    needs_prms = args.prepare or any(name != "rule" for name, _ in left)
    prm_dirs = prm_pair(args.work, args.prm_base, args.quick) if needs_prms else {}
    prms = {k: load_prm(str(v), backend="hf") for k, v in prm_dirs.items()}
    prm_names = pair_ids(dirs)
    done, left = split_finished(todo, runs_dir, setting, prm_names)  # the PRMs' digests are known now
    if args.prepare:
        print(f"start policy {policy}; PRMs {prm_names}")
        return
    eval_problems = generate_problems(setting.eval_problems, seed=setting.eval_seed, num_ops=setting.num_ops)
    deadline = time.time() + 60 * args.budget_minutes if args.budget_minutes is not None else None
    for name, seed in left:
        if deadline:
            guess = guess_seconds(costs(setting, done, work, policy), name)
            if time.time() + guess > deadline:
                log.info("budget: %s seed %d (about %.0f s) left for another session", name, seed, guess)
                continue
        result = {
            **identity(name, setting, prm_names),
            **run(name, make_reward(name, prms), seed, setting, policy, eval_problems, work),
        }
        (runs_dir / f"{name}_seed{seed}.json").write_text(json.dumps(result) + "\n")
        done.append(result)
    pending = [(n, s) for n, s in todo if not any(r["reward"] == n and r["seed"] == s for r in done)]
    default = (
        work / "rl_lab_quick.json" if args.quick else RESULTS / ("rl_lab_partial.json" if pending else "rl_lab.json")
    )
    if done:
        write_report(done, setting, prm_names, pending, args.out or default)


def print_plan(setting: Setting, done: list, left: list, cost: dict[str, float], built: bool) -> None:
    """Each run still to do with its estimated minutes (the measured per-step and per-evaluation cost of a finished
    run of that reward, else of the short measurement), and the total."""
    total = 0.0
    print(f"{len(done)} runs finished; {len(left)} to do ({setting.steps} steps of {setting.prompts_per_step} prompts)")
    for name, seed in left:
        guess = guess_seconds(cost, name)
        total += guess
        print(f"  {name} seed {seed}: ~{guess / 60:.1f} min")
    print(
        f"estimated total: ~{total / 60:.0f} min" + ("" if built else f" + the PRM pair once (~{PRM_PAIR_MINUTES} min)")
    )


def write_report(runs: list[dict], setting: Setting, prm_names: dict, pending: list, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = summarise(runs)
    verdicts = claims(summary)
    report = {
        "setting": asdict(setting),
        "prompts_per_step": setting.prompts_per_step,
        "start_policy": CHOSEN,
        "prms": prm_names,
        "pending": [f"{n}_seed{s}" for n, s in pending],
        "trl_scalar_rewards": "GRPO takes one scalar per completion: the sum of each mode's per-step rewards",
        "summary": summary,
        "claims": verdicts,
        "runs": runs,
    }
    out.write_text(json.dumps(report, indent=1) + "\n")
    pngs = plot(summary, out.with_suffix(""))
    print(table(summary))
    print("\n".join(verdict_lines(verdicts)))
    print(f"wrote {out} and {', '.join(p.name for p in pngs)}" + (f"; {len(pending)} runs pending" if pending else ""))


if __name__ == "__main__":
    main()
