"""`tdrm search QUESTION`: one search, printed as text or as one JSON object."""

from __future__ import annotations

import argparse
import dataclasses

import orjson

from tdrm_search.config import METHODS
from tdrm_search.loading import BACKENDS
from tdrm_search.prms.config import PRESETS


def add_engine_args(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that runs the engine."""
    parser.add_argument("--policy", default="lab", help='model folder, or "lab" (the embedded lab policy)')
    parser.add_argument("--prm", default=None, help='PRM folder, "lab", "oracle" or "none" (default: best shipped)')
    parser.add_argument("--backend", choices=BACKENDS, default="vllm", help="engine for the policy")
    parser.add_argument("--prm-backend", choices=BACKENDS, help="engine for the PRM (default: --backend)")
    parser.add_argument(
        "--prm-config",
        choices=sorted(PRESETS),
        metavar="PRESET",
        help=f"read-out format of a PRM folder without tdrm_prm.json: one of {sorted(PRESETS)} "
        "(tdrm: THUDM/TDRM's released value-head PRMs)",
    )
    parser.add_argument(
        "--option",
        "-o",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a search option (see SearchConfig), e.g. -o beam_width=2 -o temperature=0.7",
    )


def load_engines(args: argparse.Namespace):
    """The policy and PRM that `add_engine_args` options name."""
    from tdrm_search.loading import load_policy, load_prm

    config = PRESETS[args.prm_config] if args.prm_config else None
    return load_policy(args.policy, args.backend), load_prm(args.prm, args.prm_backend or args.backend, config=config)


def parse_options(pairs: list[str]) -> dict:
    """KEY=VALUE pairs; values are read as JSON when they parse (numbers, booleans), else kept as text."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"search option {pair!r} is not KEY=VALUE")
        try:
            options[key] = orjson.loads(value)
        except orjson.JSONDecodeError:
            options[key] = value
    return options


def register(subparsers) -> None:
    parser = subparsers.add_parser("search", help="search one problem and print the answer")
    parser.add_argument("question")
    parser.add_argument("--method", choices=METHODS, default="beam")
    parser.add_argument("-n", type=int, default=8, help="budget: complete solutions the method may produce")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_engine_args(parser)
    parser.set_defaults(func=run)


def result_dict(result) -> dict:
    return {
        "question": result.problem.question,
        "method": result.method,
        "answer": result.answer,
        "best": dataclasses.asdict(result.best) if result.best else None,
        "candidates": len(result.candidates),
        "stats": result.stats,
    }


def run(args: argparse.Namespace) -> int:
    from tdrm_search.engine import search

    options = parse_options(args.option)
    policy, prm = load_engines(args)
    result = search(args.question, policy, prm, method=args.method, n=args.n, seed=args.seed, **options)
    if args.json:
        print(orjson.dumps(result_dict(result), option=orjson.OPT_INDENT_2).decode())
        return 0
    print(f"answer: {result.answer}")
    if result.best:
        print(f"best trajectory (score {result.best.score:.3f}, {len(result.candidates)} candidates):")
        for step, score in zip(result.best.steps, result.best.step_scores, strict=True):
            print(f"  [{score:.3f}] {step.strip()}")
    print(
        "stats: " + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.stats.items())
    )
    return 0
