"""`tdrm bench`: run a dataset x method x budget x seed grid into a resumable JSONL, then summarise and plot."""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson

from tdrm_search import bench
from tdrm_search.commands.engine_args import add_engine_args, load_engines, search_options
from tdrm_search.config import METHODS, SearchConfig
from tdrm_search.config_args import add_config_args, config_from_args
from tdrm_search.datasets import extraction_policies, load_dataset
from tdrm_search.extraction import ExtractConfig
from tdrm_search.terminal import print_files


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="benchmark search methods and budgets on datasets (resumable)")
    parser.add_argument(
        "--dataset",
        "-d",
        action="append",
        required=True,
        metavar="NAME[=PATH]",
        help="gsm8k, math, math500, lab, jsonl or hf:owner/name, optionally =a local JSONL (repeatable)",
    )
    parser.add_argument("--method", "-m", nargs="+", choices=METHODS, default=["beam"])
    parser.add_argument("--budget", "-n", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--seed", type=int, nargs="+", default=[0])
    parser.add_argument("--limit", type=int, help="first N problems of each dataset (after level/subject filters)")
    parser.add_argument("--level", type=int, nargs="+", help="MATH levels to keep")
    parser.add_argument("--subject", nargs="+", help="MATH subjects to keep")
    parser.add_argument("--out", type=Path, required=True, help="results JSONL (appended to; re-running resumes)")
    parser.add_argument("--plots", type=Path, help="folder for PNG plots and summary.json (default: beside --out)")
    parser.add_argument(
        "--trees",
        type=int,
        default=0,
        metavar="K",
        help="draw the search trees of K problems per method, budget and seed as HTML pages in a trees/ folder "
        "beside --out",
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--grader-timeout", type=float, default=10.0, help="seconds per answer comparison")
    parser.add_argument("--no-progress", action="store_true")
    add_config_args(parser.add_argument_group("grading (ExtractConfig)"), ExtractConfig)
    add_engine_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    datasets = {}
    for spec in args.dataset:
        name, _, path = spec.partition("=")
        datasets[name] = load_dataset(name, path or None, limit=args.limit, levels=args.level, subjects=args.subject)
    extract = config_from_args(ExtractConfig, args)
    policies = {name: extract.policies(extraction_policies(name)) for name in datasets}
    grid = bench.Grid(datasets, args.method, args.budget, args.seed, search_options(args), policies)
    bench.check_trees(args.trees)
    for _, method, n, seed in grid.cells():  # a bad option is an error before the engines load, not failed records
        SearchConfig.make(method, n, seed, **grid.options)
    problems = sum(map(len, datasets.values()))
    print(f"tdrm bench: {problems} problems, {len(list(grid.cells()))} grid cells; loading engines...", flush=True)
    records = bench.run_bench(
        grid,
        args.out,
        *load_engines(args),
        batch_size=args.batch_size,
        grader_timeout=args.grader_timeout,
        progress=not args.no_progress,
        trees=args.trees,
    )
    rows = bench.summarize(records)
    print(bench.format_rows(rows))
    levels = bench.summarize([r for r in records if r.get("level") is not None], by=("dataset", "method", "n", "level"))
    if levels:
        print("\nper level:\n" + bench.format_rows(levels))
    plots = args.plots or args.out.parent
    paths = bench.plot(rows, plots)
    (plots / "summary.json").write_bytes(
        orjson.dumps({"summary": rows, "per_level": levels}, option=orjson.OPT_INDENT_2)
    )
    files = {args.out: f"{len(records)} records (this run's and earlier ones')", plots / "summary.json": "the tables"}
    print_files(files | dict.fromkeys(paths, "plot"))
    return 0
