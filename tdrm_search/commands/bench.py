"""`tdrm bench`: run a dataset x method x budget x seed grid into a resumable JSONL, then summarise and plot; in this
process, on Ray replicas (`--replicas`), or one shard of it (`--shard`, joined by `tdrm bench merge`)."""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import orjson

from tdrm_search import bench, grading
from tdrm_search.commands.engine_args import add_engine_args, engine_spec, search_options
from tdrm_search.config import METHODS, SearchConfig
from tdrm_search.config_args import add_config_args, config_from_args
from tdrm_search.datasets import extraction_policies, load_dataset
from tdrm_search.extraction import ExtractConfig
from tdrm_search.table import format_table
from tdrm_search.terminal import print_files


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="benchmark search methods and budgets on datasets (resumable)")
    parser.add_argument(
        "--dataset",
        "-d",
        action="append",
        metavar="NAME[=PATH]",
        help="gsm8k, math, math500, lab, jsonl or hf:owner/name, optionally =a local JSONL (repeatable)",
    )
    parser.add_argument("--method", "-m", nargs="+", choices=METHODS, default=["beam"])
    parser.add_argument("--budget", "-n", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--seed", type=int, nargs="+", default=[0])
    parser.add_argument("--limit", type=int, help="first N problems of each dataset (after level/subject filters)")
    parser.add_argument("--level", type=int, nargs="+", help="MATH levels to keep")
    parser.add_argument("--subject", nargs="+", help="MATH subjects to keep")
    parser.add_argument("--out", type=Path, help="results JSONL (appended to; re-running resumes); required")
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
    parser.add_argument(
        "--grade-workers", type=int, default=4, help="grading worker processes: answers compared this many at a time"
    )
    parser.add_argument("--no-progress", action="store_true")
    add_config_args(parser.add_argument_group("grading (ExtractConfig)"), ExtractConfig)
    add_engine_args(parser)
    scale = parser.add_argument_group("more than one machine")
    scale.add_argument("--replicas", type=int, metavar="K", help="run on K Ray actors, each with its own models")
    scale.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="join the Ray cluster at ADDR (HOST:PORT, ray://HOST:PORT or auto) instead of starting a local one",
    )
    scale.add_argument("--replica-cpus", type=float, default=1, metavar="C", help="CPUs per replica (default 1)")
    scale.add_argument("--replica-gpus", type=float, default=0, metavar="G", help="GPUs per replica (default 0)")
    scale.add_argument(
        "--shard",
        metavar="i/K",
        help="run shard i of K (i from 0: every K-th chunk of problems) into --out; join with `tdrm bench merge`",
    )
    parser.set_defaults(func=run)
    merge = parser.add_subparsers(dest="bench_command", metavar="merge").add_parser(
        "merge", help="join the results files of a sharded run (--shard i/K) into one"
    )
    merge.add_argument("out", type=Path, help="the merged results JSONL (a new file)")
    merge.add_argument("shards", type=Path, nargs="+", help="every shard's results JSONL")
    merge.set_defaults(func=run_merge)


def run_merge(args: argparse.Namespace) -> int:
    records = bench.merge(args.out, args.shards)
    print_files({args.out: f"{len(records)} records from {len(args.shards)} shards"})
    return 0


def run(args: argparse.Namespace) -> int:
    if not args.dataset or args.out is None:
        raise ValueError("--dataset and --out are required (or `tdrm bench merge OUT SHARD...`)")
    if args.replicas is not None and args.replicas < 1:
        raise ValueError(f"--replicas must be >= 1, got {args.replicas}")
    shard = bench.parse_shard(args.shard) if args.shard else None
    datasets = {}
    for spec in args.dataset:
        name, _, path = spec.partition("=")
        datasets[name] = load_dataset(name, path or None, limit=args.limit, levels=args.level, subjects=args.subject)
    extract = config_from_args(ExtractConfig, args)
    policies = {name: extract.policies(extraction_policies(name)) for name in datasets}
    grid = bench.Grid(datasets, args.method, args.budget, args.seed, search_options(args), policies)
    bench.check_trees(args.trees)
    if args.grade_workers < 1:
        raise ValueError(f"--grade-workers must be >= 1, got {args.grade_workers}")
    grading.use_workers(args.grade_workers)
    for _, method, n, seed in grid.cells():  # a bad option is an error before the engines load, not failed records
        SearchConfig.make(method, n, seed, **grid.options)
    spec = engine_spec(args)
    problems = sum(map(len, datasets.values()))
    where = f"on {args.replicas} Ray replica(s)" if args.replicas else "here"
    print(
        f"tdrm bench: {problems} problems, {len(list(grid.cells()))} grid cells; loading engines {where}...", flush=True
    )
    run_options = dict(
        batch_size=args.batch_size,
        grader_timeout=args.grader_timeout,
        progress=not args.no_progress,
        trees=args.trees,
        shard=shard,
    )
    if args.replicas:
        from tdrm_search.distributed import Replicas

        replicas = Replicas(
            spec, args.replicas, args.ray_address, args.replica_cpus, args.replica_gpus, verbose=args.verbose
        )
        with replicas:
            execute = functools.partial(replicas.execute, keep_results=args.trees > 0)
            records = bench.run_bench(grid, args.out, execute=execute, **run_options)
    else:
        records = bench.run_bench(grid, args.out, *spec.load(), **run_options)
    rows = bench.summarize(records)
    print(format_table(rows))
    levels = bench.summarize([r for r in records if r.get("level") is not None], by=("dataset", "method", "n", "level"))
    if levels:
        print("\nper level:\n" + format_table(levels))
    plots = args.plots or args.out.parent
    paths = bench.plot(rows, plots)
    (plots / "summary.json").write_bytes(
        orjson.dumps({"summary": rows, "per_level": levels}, option=orjson.OPT_INDENT_2)
    )
    files = {args.out: f"{len(records)} records (this run's and earlier ones')", plots / "summary.json": "the tables"}
    print_files(files | dict.fromkeys(paths, "plot"))
    return 0
