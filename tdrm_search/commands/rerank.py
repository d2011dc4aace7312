"""`tdrm rerank FILE`: pass@k, majority@k, best-of-k and weighted majority@k of precomputed candidates, optionally
replaying the consensus stop (`--stop consensus`)."""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson

from tdrm_search import rerank
from tdrm_search.config import SearchConfig
from tdrm_search.config_args import add_config_args, config_from_args
from tdrm_search.extraction import ENGINE_POLICY, ExtractConfig
from tdrm_search.table import format_table


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
    add_config_args(parser.add_argument_group("grading (ExtractConfig)"), ExtractConfig)
    add_config_args(
        parser.add_argument_group("stopping replay (SearchConfig)"), SearchConfig, only=("stop", "confidence", "wave")
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.candidates.exists():
        raise FileNotFoundError(args.candidates)
    policies = config_from_args(ExtractConfig, args).policies((ENGINE_POLICY,))
    if len(policies) != 1:
        raise ValueError(f"rerank grades under one extraction policy; got {list(policies)}")
    stop = rerank.Stop(args.stop, args.confidence, args.wave) if args.stop else None
    rows = rerank.rerank(args.candidates, args.k, args.samples, args.seed, policies[0], stop)
    print(format_table(rows, ["k", "problems", *rerank.METRICS], headers=rerank.HEADERS))
    if args.json:
        args.json.write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2))
    return 0
