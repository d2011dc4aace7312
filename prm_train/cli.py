"""`tdrm prm {collect,import,targets,train,evaluate,export}`: the PRM training pipeline from the command line.

`python -m prm_train.cli train ...` is `tdrm prm train ...`, the form `accelerate launch -m prm_train.cli train ...`
runs in every process."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from prm_train.config import CollectConfig, TrainConfig
from prm_train.imports import FORMATS
from prm_train.targets import TargetSpec
from tdrm_search.commands.engine_args import (
    add_backend_arg,
    add_placement_args,
    add_policy_arg,
    add_prm_arg,
    add_revision_arg,
)
from tdrm_search.config_args import add_config_args, config_from_args
from tdrm_search.loading import MODEL_HELP

HEAD_CONFIGS = {  # TDRM's layout
    "lm": {"step_join": "\n\n"},
    "value": {"head": "value", "step_join": "\n\n"},
    "likelihood": {"head": "likelihood", "step_join": "\n\n"},
}


def register(subparsers) -> None:
    prm = subparsers.add_parser("prm", help="collect rollouts, build targets, train, evaluate and export PRMs")
    sub = prm.add_subparsers(dest="prm_command", required=True)

    p = sub.add_parser("collect", help="search problems with the engine and cut its trees into graded rollouts (JSONL)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--dataset",
        default="lab",
        metavar="NAME[=PATH]",
        help="lab (generated), or gsm8k, math, math500 or jsonl =a local JSONL, or hf:owner/name[:config]@train",
    )
    add_policy_arg(p)
    add_prm_arg(p, "none", '"none", "lab" or "oracle": the PRM that guides beam / mcts')
    add_backend_arg(p, "vllm", "the policy and the PRM")
    add_placement_args(p)
    p.add_argument("--problems", type=int, default=100, help="problems to search (the first N of a dataset)")
    p.add_argument(
        "--split",
        choices=["train", "eval"],
        default="train",
        help="lab only: train draws from the lab's training seed stream; eval uses plain seed --seed",
    )
    add_config_args(p, CollectConfig)
    p.set_defaults(func=run_collect)

    p = sub.add_parser("import", help="read step-labelled PRM data (Math-Shepherd, RLHFlow, PRM800K) as rollouts")
    p.add_argument("file", type=Path)
    p.add_argument("--format", required=True, choices=sorted(FORMATS))
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=run_import)

    p = sub.add_parser("targets", help="print or save each rollout's step targets")
    p.add_argument("rollouts", type=Path)
    add_config_args(p, TargetSpec)
    add_prm_arg(p, None, '"lab": the PRM whose values bootstrapped targets read', "none")
    add_placement_args(p)
    p.add_argument("--out", type=Path, help="JSONL of targets (default: stdout)")
    p.set_defaults(func=run_targets)

    p = sub.add_parser("train", help="train a PRM from rollouts; --out is a loadable PRM folder + checkpoint")
    p.add_argument("rollouts", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--base", default="lab", help=f'backbone to start from: "lab" (the lab policy), "smollm2", or {MODEL_HELP}'
    )
    add_revision_arg(p, "--base-revision", "--base")
    add_placement_args(p)
    add_config_args(p, TargetSpec)
    add_config_args(p, TrainConfig, only=[f.name for f in dataclasses.fields(TrainConfig) if f.name != "targets"])
    p.add_argument("--resume", action="store_true", help="continue from --out's checkpoint")
    p.add_argument(
        "--head",
        choices=sorted(HEAD_CONFIGS),
        default="lm",
        help="lm: P(good) at step tags of the causal LM; value: a 1-logit sequence-classification head "
        "read at the last token of each step's conversation (TDRM's scalar PRM); likelihood: sigmoid(scale * "
        "log-probability of the least likely token so far + bias), the LM trained through it",
    )
    p.add_argument("--prm-config", type=json.loads, default={}, help="PRMConfig fields as JSON, over --head's")
    p.set_defaults(func=run_train)

    p = sub.add_parser("evaluate", help="step AUC, first-error F1, Best-of-N and smoothness on labelled rollouts")
    p.add_argument("rollouts", type=Path)
    add_prm_arg(p, "lab", '"lab" or "oracle"')
    add_backend_arg(p, "hf", "the PRM")
    add_placement_args(p)
    p.add_argument("--n", type=int, nargs="+", default=[4, 16, 64])
    p.add_argument("--json", type=Path)
    p.set_defaults(func=run_evaluate)

    p = sub.add_parser("export", help="export a training run's last checkpoint as a PRM folder")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=run_export)


def collect_problems(args):
    """The problems to collect on: the lab's seed streams, a local file, or a hub dataset's named (train) split."""
    from tdrm_search.datasets import HF_SOURCES, load_dataset
    from tdrm_search.tasks.lab import generate_problems, train_seed

    name, _, path = args.dataset.partition("=")
    if name == "lab" and not path:
        return generate_problems(args.problems, seed=train_seed(args.seed) if args.split == "train" else args.seed)
    if not path and (name in HF_SOURCES or (name.startswith("hf:") and "@" not in name)):
        raise ValueError(
            f"dataset {name!r} without a path is a hub test split, and training data must never come from one: pass "
            "a local train file (e.g. gsm8k=../shared/data/gsm8k_train.jsonl) or hf:owner/name[:config]@train"
        )
    return load_dataset(name, path or None, limit=args.problems)


def run_collect(args) -> int:
    from prm_train.collect import collect
    from prm_train.data import write_rollouts
    from tdrm_search.loading import load_policy, load_prm

    problems = collect_problems(args)
    if not problems:
        raise ValueError(f"dataset {args.dataset!r} gave no problems")
    cfg = config_from_args(CollectConfig, args)
    place = {"device": args.device, "dtype": args.dtype}
    policy = load_policy(args.policy, backend=args.backend, revision=args.revision, **place)
    prm = load_prm(args.prm, backend=args.backend, revision=args.prm_revision, **place)
    rollouts, stats = collect(problems, policy, cfg, prm)
    write_rollouts(args.out, rollouts)
    acc = sum(r.outcome for r in rollouts) / max(1, len(rollouts))
    print(f"wrote {len(rollouts)} rollouts from {stats.trees} trees to {args.out} (accuracy {acc:.3f}); {stats}")
    return 0


def run_import(args) -> int:
    from prm_train.data import write_rollouts
    from prm_train.imports import import_rollouts

    rollouts = import_rollouts(args.file, args.format)
    write_rollouts(args.out, rollouts)
    print(f"wrote {len(rollouts)} rollouts ({sum(map(len, (r.steps for r in rollouts)))} labelled steps) to {args.out}")
    return 0


def run_targets(args) -> int:
    from prm_train.data import read_rollouts
    from prm_train.evaluate import score_rollouts
    from prm_train.targets import all_targets
    from tdrm_search.loading import load_prm

    rollouts, spec = read_rollouts(args.rollouts), config_from_args(TargetSpec, args)
    values = None
    if spec.bootstraps or spec.in_step:
        if args.prm is None and not spec.reads_tree:
            raise ValueError(f"{spec.kind} targets bootstrap from a value function: pass --prm FOLDER")
        if args.prm:
            prm = load_prm(args.prm, backend="hf", revision=args.prm_revision, device=args.device, dtype=args.dtype)
            values = score_rollouts(prm, rollouts)
    targets = all_targets(rollouts, spec, values)
    lines = [json.dumps({"id": r.problem.id, "targets": t}) for r, t in zip(rollouts, targets, strict=True)]
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    else:
        print("\n".join(lines))
    return 0


def run_train(args) -> int:
    from prm_train.data import read_rollouts
    from prm_train.train import train_prm
    from tdrm_search.loading import LAB_POLICY, resolve
    from tdrm_search.prms.config import PRMConfig

    cfg = config_from_args(TrainConfig, args, targets=config_from_args(TargetSpec, args))
    base = resolve(args.base, LAB_POLICY, "base model", args.base_revision)
    config = PRMConfig(**{**HEAD_CONFIGS[args.head], **args.prm_config})
    rollouts = read_rollouts(args.rollouts)
    result = train_prm(base, rollouts, config, cfg, args.out, args.resume, device=args.device, dtype=args.dtype)
    print(f"trained in {result.seconds:.0f}s ({result.steps} steps); PRM folder: {args.out}")
    return 0


def run_evaluate(args) -> int:
    from prm_train.data import read_rollouts
    from prm_train.evaluate import evaluate_prm
    from tdrm_search.loading import load_prm

    prm = load_prm(args.prm, backend=args.backend, revision=args.prm_revision, device=args.device, dtype=args.dtype)
    report = evaluate_prm(prm, read_rollouts(args.rollouts), args.n)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


def run_export(args) -> int:
    from prm_train.export import export_checkpoint

    print(f"exported {export_checkpoint(args.run_dir, args.out)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m prm_train.cli SUBCOMMAND ...`: `tdrm prm SUBCOMMAND ...` (what `accelerate launch -m` runs)."""
    import sys

    from tdrm_search.cli import main as tdrm

    return tdrm(["prm", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
