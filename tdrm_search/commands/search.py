"""`tdrm search QUESTION`: one search, printed as text or as one JSON object."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import orjson

from tdrm_search.commands.engine_args import add_engine_args, load_engines, search_options
from tdrm_search.config import METHODS


def register(subparsers) -> None:
    parser = subparsers.add_parser("search", help="search one problem and print the answer")
    parser.add_argument("question")
    parser.add_argument("--method", choices=METHODS, default="beam")
    parser.add_argument("-n", type=int, default=8, help="budget: complete solutions the method may produce")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--reference", help="the reference answer: the tree marks final answers right or wrong")
    parser.add_argument(
        "--tree", type=Path, metavar="FILE", help="draw the search tree to FILE: .html (interactive), .svg or .png"
    )
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
    from tdrm_search.tree_view import check_tree_path, write_tree
    from tdrm_search.types import Problem

    options = search_options(args)
    if args.tree is not None:
        check_tree_path(args.tree)
    policy, prm = load_engines(args)
    problem = Problem(args.question, answer=args.reference)
    result = search(problem, policy, prm, method=args.method, n=args.n, seed=args.seed, **options)
    if args.json:
        print(orjson.dumps(result_dict(result), option=orjson.OPT_INDENT_2).decode())
    else:
        print(f"answer: {result.answer}")
        if result.best:
            print(f"best trajectory (score {result.best.score:.3f}, {len(result.candidates)} candidates):")
            for step, score in zip(result.best.steps, result.best.step_scores, strict=True):
                print(f"  [{score:.3f}] {step.strip()}")
        stats = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.stats.items())
        print(f"stats: {stats}")
    if args.tree is not None:  # after the answer; on stderr beside --json, whose stdout is one JSON object
        print(f"tree: {write_tree(result, args.tree)}", file=sys.stderr if args.json else sys.stdout)
    return 0
