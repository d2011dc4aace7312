"""The lab PRM comparison: outcome vs Monte-Carlo vs TD(λ) targets, same rollouts, same backbone.

    python benchmarks/prm_lab.py            # writes benchmarks/results/lab_prm_comparison.{json,md}
    python benchmarks/prm_lab.py --ship     # ... and copies the best PRM to tdrm_search/assets/lab-prm

Stages are cached under --work (rollouts as JSONL, one training run folder per PRM), so a rerun resumes.
Training problems come from the lab's training seed stream (`train_seed`), evaluation problems from seed 1.
Every PRM is initialised from the lab policy's weights and trained with the same number of epochs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from statistics import fmean

import torch

from prm_train.collect import collect
from prm_train.config import CollectConfig
from prm_train.data import Rollout, read_rollouts, write_rollouts
from prm_train.evaluate import best_of_n, evaluate_prm, final_answers, majority_of_n, pools_by_problem
from prm_train.export import CHECKPOINT, TRAINING_FILE
from prm_train.targets import TargetSpec
from prm_train.train import TrainConfig, train_prm
from tdrm_search.engine import search_batch
from tdrm_search.loading import LAB_POLICY, LAB_PRM
from tdrm_search.prms.config import PRMConfig
from tdrm_search.prms.hf import HFPRM
from tdrm_search.prms.oracle import OraclePRM
from tdrm_search.prms.vllm import VLLMPRM
from tdrm_search.tasks.lab import generate_problems, train_seed

RESULTS = Path(__file__).parent / "results"
LAB_PRM_CONFIG = PRMConfig(step_join="\n\n", aggregation="last")
NS = (4, 16, 64)


def cached_rollouts(path: Path, make) -> tuple[list[Rollout], dict]:
    stats_file = path.with_suffix(".stats.json")
    if path.exists() and stats_file.exists():
        return read_rollouts(path), json.loads(stats_file.read_text())
    started = time.perf_counter()
    rollouts, stats = make()
    write_rollouts(path, rollouts)
    info = {
        **vars(stats),
        "seconds": round(time.perf_counter() - started, 1),
        "rollouts": len(rollouts),
        "accuracy": fmean(r.outcome for r in rollouts),
    }
    stats_file.write_text(json.dumps(info, indent=2))
    return rollouts, info


def train_configs(args) -> dict[str, TrainConfig]:
    common = dict(batch_size=args.batch_size, lr=args.lr, seed=0)
    rounds = args.td_rounds
    return {
        "outcome": TrainConfig(TargetSpec("outcome"), rounds=1, epochs=args.epochs, **common),
        "mc_soft": TrainConfig(TargetSpec("mc_soft"), rounds=1, epochs=args.epochs, **common),
        "td_lambda": TrainConfig(
            TargetSpec("td_lambda", gamma=args.gamma, lam=args.lam),
            rounds=rounds,
            epochs=args.epochs // rounds,
            **common,
        ),
    }


def trained(run_dir: Path) -> dict | None:
    meta = run_dir / TRAINING_FILE
    data = json.loads(meta.read_text()) if meta.exists() else {}
    return data if "losses" in data else None


def beam_accuracy(problems, policy, prm, ns) -> dict[str, float]:
    out = {}
    for n in ns:
        # n // 4 beams, 4 expansions each (search-and-learn); n = 4 is TDRM's greedy step search with k = 4
        results = search_batch(
            problems, policy, prm, method="beam", n=n, seed=0, max_tokens=256, beam_width=max(1, n // 4), expansions=4
        )
        out[str(n)] = fmean(bool(r.correct) for r in results)
    return out


def table(report: dict) -> str:
    lines = [
        "| PRM | BoN@4 | BoN@16 | BoN@64 | beam@4 | beam@16 | beam@64 | step AUC | first-error F1 | mean abs dV "
        "| TD error | Lipschitz/token | train s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    fmt = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
    for name, row in report["prms"].items():
        bon, beam, sm = row["best_of_n"]["last"], row["beam"], row["smoothness"]
        lines.append(
            "| "
            + " | ".join(
                [
                    name,
                    *(fmt(bon[str(n)]) for n in NS),
                    *(fmt(beam[str(n)]) for n in NS),
                    fmt(row["step_auc"]),
                    fmt(row["first_error"]["f1"]),
                    fmt(sm["mean_abs_diff"]),
                    fmt(sm["td_error"]),
                    f"{sm['lipschitz_per_token']:.4f}",
                    str(row.get("train_seconds", "-")),
                ]
            )
            + " |"
        )
    base = report["baselines"]
    lines.append("| majority vote | " + " | ".join(fmt(base["majority"][str(n)]) for n in NS) + " | | | | | | | | | |")
    lines.append("| pass@n | " + " | ".join(fmt(base["pass"][str(n)]) for n in NS) + " | | | | | | | | | |")
    return "\n".join(lines)


def baselines(rollouts: list[Rollout]) -> dict:
    """No-verifier references on the same pools: majority vote, and pass@n (any rollout right)."""
    pools = pools_by_problem(rollouts)
    correct = [r.outcome for r in rollouts]
    answers = final_answers(rollouts)
    return {
        "pass": {str(n): best_of_n([float(c) for c in correct], correct, pools, n) for n in NS},
        "majority": {str(n): majority_of_n(answers, correct, pools, n) for n in NS},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("/tmp/tdrm_prm_lab"))
    p.add_argument("--train-problems", type=int, default=300)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--mc", type=int, default=4)
    p.add_argument("--eval-problems", type=int, default=100)
    p.add_argument("--pool", type=int, default=64)
    p.add_argument("--beam-problems", type=int, default=50)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--td-rounds", type=int, default=2)
    p.add_argument("--gamma", type=float, default=1.0)
    p.add_argument("--lam", type=float, default=0.7)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, default=1, help="torch threads after collection")
    p.add_argument("--only", nargs="*", help="train/evaluate only these PRMs")
    p.add_argument("--ship", action="store_true", help="copy the best trained PRM to tdrm_search/assets/lab-prm")
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    from tdrm_search.policies.vllm import VLLMPolicy

    policy = VLLMPolicy(LAB_POLICY)
    train_problems = generate_problems(args.train_problems, seed=train_seed(0))
    eval_problems = generate_problems(args.eval_problems, seed=1)
    train_rollouts, train_stats = cached_rollouts(
        args.work / "train.jsonl",
        lambda: collect(train_problems, policy, CollectConfig(k=args.k, mc_samples=args.mc, seed=0)),
    )
    print("train rollouts", train_stats, flush=True)
    eval_rollouts, eval_stats = cached_rollouts(
        args.work / "eval.jsonl", lambda: collect(eval_problems, policy, CollectConfig(k=args.pool, seed=1))
    )
    print("eval rollouts", eval_stats, flush=True)

    torch.set_num_threads(args.threads)  # training and scoring: 1 thread was 2-3x faster on 2 shared cores
    report = {
        "setup": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "policy": str(LAB_POLICY),
        "backbone": "lab policy weights (Qwen2, hidden 128) + its tokenizer",
        "collect": {"train": train_stats, "eval": eval_stats},
        "prms": {},
        "baselines": baselines(eval_rollouts),
    }
    prms = {}
    for name, cfg in train_configs(args).items():
        if args.only and name not in args.only:
            continue
        run_dir = args.work / name
        meta = trained(run_dir)
        if meta is None:
            print(f"training {name}", flush=True)
            train_prm(
                LAB_POLICY,
                train_rollouts,
                LAB_PRM_CONFIG,
                cfg,
                run_dir,
                resume=True,
                progress=False,
                meta={"name": name},
            )
            meta = trained(run_dir)
        prms[name] = (HFPRM(run_dir, batch_size=64), meta)
    prms["oracle"] = (OraclePRM(), None)
    for name, (prm, meta) in prms.items():
        started = time.perf_counter()
        row = evaluate_prm(prm, eval_rollouts, NS, gamma=1.0)
        # beam search scores partial paths step by step: vLLM's prefix cache makes that incremental
        beam_prm = VLLMPRM(args.work / name) if meta else prm
        row["beam"] = beam_accuracy(eval_problems[: args.beam_problems], policy, beam_prm, NS)
        if meta:
            row.update(train_seconds=meta["seconds"], losses=meta["losses"], train=meta["train"])
        row["eval_seconds"] = round(time.perf_counter() - started, 1)
        report["prms"][name] = row
        print(name, json.dumps({k: row[k] for k in ("step_auc", "beam", "smoothness")}), flush=True)
        (RESULTS / "lab_prm_comparison.json").write_text(json.dumps(report, indent=2) + "\n")

    trained_names = [n for n in report["prms"] if n != "oracle"]
    score = {
        n: fmean(
            [report["prms"][n]["best_of_n"]["last"][str(k)] for k in NS]
            + [report["prms"][n]["beam"][str(k)] for k in NS]
        )
        for n in trained_names
    }
    best = max(score, key=score.get)
    report["shipped"] = {
        "name": best,
        "rule": "highest mean of BoN(last) and beam accuracy over n = 4, 16, 64",
        "scores": score,
    }
    (RESULTS / "lab_prm_comparison.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "lab_prm_comparison.md").write_text(
        "# Lab PRM comparison (outcome vs MC vs TD(λ) targets)\n\n" + table(report) + "\n"
    )
    print(table(report))
    if args.ship:
        if LAB_PRM.exists():
            shutil.rmtree(LAB_PRM)
        shutil.copytree(args.work / best, LAB_PRM, ignore=shutil.ignore_patterns(CHECKPOINT))
        print(f"shipped {best} to {LAB_PRM}")


if __name__ == "__main__":
    main()
