"""`tdrm rerank FILE`: pass@k, majority@k, best-of-k and weighted majority@k of precomputed candidates."""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson

from tdrm_search import rerank


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "rerank",
        help="re-rank precomputed candidate solutions (no generation)",
        description=rerank.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("candidates", type=Path, help="JSONL: one problem per line with its candidates")
    parser.add_argument("--k", type=int, nargs="+", help="budgets (default: powers of two up to the most candidates)")
    parser.add_argument(
        "--samples", type=int, default=1, help="random k-subsets averaged for voting metrics (1: first k)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.candidates.exists():
        raise FileNotFoundError(args.candidates)
    rows = rerank.rerank(args.candidates, args.k, args.samples, args.seed)
    print(rerank.format_table(rows))
    if args.json:
        args.json.write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2))
    return 0
