"""GRPO on the lab policy with PRM rewards (issue 18): does a summed PRM reward get hacked, do Clip / Delta
(arXiv 2410.15115) prevent it, and does TDRM's 0.2 PRM + 0.8 rule mix (arXiv 2509.15110) learn faster than the
rule reward alone?

Every run starts from the shipped lab policy and trains with TRL's GRPOTrainer on CPU on the same prompts in the
same order (step s's prompts are the lab problems of training seed `train_seed(s)`), the same number of steps and
the same sampling settings; only the reward differs (and the sampling seed, across seeds). The runs themselves are
`rl_bridge/lab_grpo.py`; the rewards:

    rule          the verifiable reward: 1 for a right final answer, else 0;
    raw_prm       the sum of the shipped TD PRM's step values (the hackable return of 2410.15115);
    rule_raw_prm  rule + that sum;
    clip, delta, clip_delta   rl_bridge's refinements (rule included), eta 0.5; GRPO takes one scalar per
                  completion, so the trainer sees the sum of the per-step rewards (rl_bridge/README.md);
    mix_td        TDRM's mix, 0.2 * PRM value (last step) + 0.8 * rule, with the shipped TD PRM;
    mix_mc        the same mix with an MC-label PRM (--mc-prm; left out when not given).

Every --eval-every steps the policy solves the held-out problems greedily (evaluation seed --eval-seed, never a
training seed) and we record: accuracy; mean steps and generated tokens (EOS included); the share of solutions
with a repeated or unnecessary step -- a step whose text equals an earlier step's, or more steps than the
problem's operations plus the answer line; and the mean reward of those greedy solutions under the run's own
reward. From the seed-averaged curves: the prompts each reward needs to reach the rule-only run's final accuracy.

    python -m benchmarks.rl_lab [--quick] [--rewards rule clip ...] [--seeds 0 1 2] [--mc-prm DIR]

writes benchmarks/results/rl_lab.json (--quick: rl_lab_quick.json), one PNG per metric (rl_lab_<metric>.png) and
prints a table. Finished runs are kept under --work and reused by a rerun with the same settings.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path
from statistics import fmean

import torch

from rl_bridge.lab_grpo import REWARDS, Setting, make_reward, solution_stats, trainer_for
from rl_bridge.trl import TRLReward
from tdrm_search.loading import LAB_POLICY, LAB_PRM, load_prm
from tdrm_search.table import format_table
from tdrm_search.tasks.lab import generate_problems
from tdrm_search.types import Problem

RESULTS = Path(__file__).parent / "results"
METRICS = ("accuracy", "steps", "tokens", "repeat_share", "reward")
log = logging.getLogger(__name__)
QUICK = Setting(steps=6, batch=16, generations=4, eval_problems=30, eval_every=3)


@torch.no_grad()
def greedy(model, tokenizer, problems: list[Problem], max_tokens: int) -> list[tuple[str, int]]:
    """Each problem's greedy solution and its generated token count (up to and including EOS)."""
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p.question}], tokenize=False, add_generation_prompt=True
        )
        for p in problems
    ]
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    tokenizer.padding_side = side
    was_training = model.training
    model.eval()
    out = model.generate(
        **batch.to(model.device),
        do_sample=False,
        max_new_tokens=max_tokens,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model.train(was_training)
    solutions = []
    for row in out[:, batch["input_ids"].shape[1] :].tolist():
        n = row.index(tokenizer.eos_token_id) + 1 if tokenizer.eos_token_id in row else len(row)
        solutions.append((tokenizer.decode(row[:n], skip_special_tokens=True), n))
    return solutions


def evaluate(model, tokenizer, problems: list[Problem], reward: TRLReward, max_tokens: int) -> dict[str, float]:
    """Greedy accuracy, mean steps and tokens, share with a repeated/unnecessary step, mean reward (run's own)."""
    solutions = greedy(model, tokenizer, problems, max_tokens)
    stats = [solution_stats(p, text) for p, (text, _) in zip(problems, solutions, strict=True)]
    rewards = reward(
        prompts=[[{"role": "user", "content": p.question}] for p in problems],
        completions=[[{"role": "assistant", "content": text}] for text, _ in solutions],
        answer=[p.answer for p in problems],
    )
    return {
        "accuracy": fmean(s["correct"] for s in stats),
        "steps": fmean(s["steps"] for s in stats),
        "tokens": fmean(n for _, n in solutions),
        "repeat_share": fmean(s["repeat"] for s in stats),
        "reward": fmean(r for r in rewards if r is not None),
    }


def run(name: str, reward: TRLReward, seed: int, setting: Setting, eval_problems: list[Problem], work: Path) -> dict:
    """One GRPO run: its evaluation curve and the trainer's per-step reward log."""
    from transformers import TrainerCallback

    curve: list[dict] = []

    class Evaluate(TrainerCallback):
        def record(self, step: int, model, processing_class) -> None:
            point = evaluate(model, processing_class, eval_problems, reward, setting.max_tokens)
            curve.append({"step": step, "prompts": step * setting.prompts_per_step, **point})
            log.info("%s seed %d step %d: %s", name, seed, step, point)

        def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
            self.record(0, model, processing_class)

        def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
            if state.global_step % setting.eval_every == 0 or state.global_step == setting.steps:
                self.record(state.global_step, model, processing_class)

    started = time.perf_counter()
    trainer = trainer_for(reward, setting, seed, str(work / f"{name}_seed{seed}"))
    trainer.add_callback(Evaluate())
    trainer.train()
    train_log = [
        {"step": e["step"], "reward": e.get(f"rewards/{name}/mean"), "length": e.get("completions/mean_length")}
        for e in trainer.state.log_history
        if f"rewards/{name}/mean" in e
    ]
    return {
        "reward": name,
        "seed": seed,
        "curve": curve,
        "train": train_log,
        "seconds": round(time.perf_counter() - started, 1),
    }


def prompts_to_reach(curve: list[dict], target: float) -> int | None:
    """Prompts seen at the first evaluation whose accuracy reaches `target` (None: never)."""
    return next((p["prompts"] for p in curve if p["accuracy"] >= target - 1e-9), None)


def mean_curve(runs: list[dict]) -> list[dict]:
    """The seed average of runs evaluated at the same steps."""
    return [
        {
            "step": points[0]["step"],
            "prompts": points[0]["prompts"],
            **{m: fmean(p[m] for p in points) for m in METRICS},
        }
        for points in zip(*(r["curve"] for r in runs), strict=True)
    ]


def summarise(runs: list[dict]) -> dict[str, dict]:
    """Per reward: the seed-averaged curve, its final point, the per-seed final accuracies, and the prompts it needs
    to reach the rule-only run's final (seed-averaged) accuracy."""
    by_reward: dict[str, list[dict]] = {}
    for r in runs:
        by_reward.setdefault(r["reward"], []).append(r)
    summary = {
        name: {
            "seeds": [r["seed"] for r in rs],
            "curve": mean_curve(rs),
            "final_accuracy_per_seed": [r["curve"][-1]["accuracy"] for r in rs],
        }
        for name, rs in by_reward.items()
    }
    target = summary["rule"]["curve"][-1]["accuracy"] if "rule" in summary else None
    for row in summary.values():
        row["final"] = row["curve"][-1]
        row["prompts_to_rule_final"] = None if target is None else prompts_to_reach(row["curve"], target)
    return summary


def table(report: dict) -> str:
    """The final evaluation per reward (seed means; accuracy with the seeds' range)."""
    start = next(iter(report["summary"].values()))["curve"][0]
    rows = [{"reward": "start (every run)", "seeds": "-", **final_cells(start, None), "reward/step": "-", "reach": "-"}]
    for name, row in report["summary"].items():
        f, reach, seeds = row["final"], row["prompts_to_rule_final"], row["final_accuracy_per_seed"]
        rows.append(
            {
                "reward": name,
                "seeds": len(seeds),
                **final_cells(f, seeds),
                "reward/step": f"{f['reward']:.3f}",
                "reach": "never" if reach is None else reach,
            }
        )
    return format_table(rows, markdown=True, headers=TABLE_HEADERS)


TABLE_HEADERS = {
    "accuracy": "accuracy (seed range)",
    "repeat": "repeated/unnecessary",
    "reward/step": "mean reward",
    "reach": "prompts to rule's final",
}


def final_cells(point: dict, seeds: list[float] | None) -> dict:
    """One evaluation point's cells: accuracy (with the seeds' range), steps, tokens, repeated-step share."""
    spread = f" ({min(seeds):.2f}-{max(seeds):.2f})" if seeds else ""
    return {
        "accuracy": f"{point['accuracy']:.3f}{spread}",
        "steps": f"{point['steps']:.2f}",
        "tokens": f"{point['tokens']:.1f}",
        "repeat": f"{point['repeat_share']:.3f}",
    }


def plot(report: dict, prefix: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {
        "accuracy": "greedy accuracy",
        "steps": "mean steps",
        "tokens": "mean generated tokens",
        "repeat_share": "share with a repeated/unnecessary step",
        "reward": "mean reward (run's own)",
    }
    paths = []
    for metric in METRICS:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for name, row in report["summary"].items():
            ax.plot([p["prompts"] for p in row["curve"]], [p[metric] for p in row["curve"]], marker="o", label=name)
        ax.set_xlabel("prompts seen")
        ax.set_ylabel(labels[metric])
        ax.set_title(f"GRPO on the lab policy (mean of seeds): {labels[metric]}, held-out problems", fontsize=10)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = prefix.with_name(f"{prefix.name}_{metric}.png")
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few minutes: 6 steps of 16, 30 evaluation problems")
    parser.add_argument("--rewards", nargs="+", default=list(REWARDS), choices=REWARDS)
    parser.add_argument("--seeds", type=int, nargs="+", help="sampling seeds (default: 0 1 2; --quick: 0)")
    parser.add_argument("--steps", type=int, help="GRPO steps (overrides the setting's)")
    parser.add_argument("--mc-prm", type=Path, help="the MC-label PRM folder for mix_mc (none: mix_mc left out)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--work", type=Path, default=Path("/tmp/tdrm_rl_lab"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    setting = QUICK if args.quick else Setting()
    if args.steps:
        setting = Setting(**{**asdict(setting), "steps": args.steps})
    out = args.out or RESULTS / ("rl_lab_quick.json" if args.quick else "rl_lab.json")
    rewards = [r for r in args.rewards if r != "mix_mc" or args.mc_prm]
    if len(rewards) < len(args.rewards):
        log.warning("no --mc-prm: mix_mc left out")
    prms = {"td": load_prm(None, backend="hf")}
    if args.mc_prm:
        prms["mc"] = load_prm(str(args.mc_prm), backend="hf")
    trained = json.loads((LAB_PRM / "training.json").read_text())["train"]
    prm_names = {
        "td": f"tdrm_search/assets/lab-prm (shipped: {trained['targets']['kind']} seed {trained['seed']})",
        "mc": str(args.mc_prm or "none"),
    }
    eval_problems = generate_problems(setting.eval_problems, seed=setting.eval_seed, num_ops=setting.num_ops)
    work = args.work / ("quick" if args.quick else "full")
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    runs = []
    for seed in args.seeds or ([0] if args.quick else [0, 1, 2]):  # seed-major: all rewards get seed 0 first
        for name in rewards:
            cache = work / f"{name}_seed{seed}.json"
            cached = json.loads(cache.read_text()) if cache.exists() else None
            if cached is None or (cached["setting"], cached.get("prms")) != (asdict(setting), prm_names):
                cached = {
                    "setting": asdict(setting),
                    "prms": prm_names,
                    **run(name, make_reward(name, prms), seed, setting, eval_problems, work),
                }
                cache.write_text(json.dumps(cached) + "\n")
            runs.append(cached)
    report = {
        "setting": asdict(setting),
        "prompts_per_step": setting.prompts_per_step,
        "policy": str(LAB_POLICY),
        "prms": prm_names,
        "trl_scalar_rewards": "GRPO takes one scalar per completion: the sum of each mode's per-step rewards",
        "summary": summarise(runs),
        "runs": runs,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    pngs = plot(report, out.with_suffix(""))
    print(table(report))
    print(f"wrote {out} and {', '.join(p.name for p in pngs)}")


if __name__ == "__main__":
    main()
