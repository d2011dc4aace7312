"""`tdrm demo`: greedy decoding against verifier-guided search on lab problems, with a table and a plot.

Runs on the embedded lab policy and the project's shipped trained PRM (a TD-trained likelihood-head PRM,
`benchmarks/results/lab_prm_comparison_likelihood.md`; `--prm oracle` for the lab's exact step checker), in a few
minutes on a CPU, and prints majority vote and pass@n of the same samples beside every best-of-n row.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson

from tdrm_search import bench
from tdrm_search.commands.engine_args import add_engine_args, load_engines, search_options
from tdrm_search.table import format_table
from tdrm_search.terminal import print_files

DEMO_SEED = 2026  # an evaluation seed: the lab policy never trained on it


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="search vs greedy on the lab task (no GPU, a few minutes)")
    parser.add_argument("--problems", type=int, default=32, help="lab problems to solve")
    parser.add_argument("--budgets", type=int, nargs="+", default=[4, 16], help="budgets n for the search methods")
    parser.add_argument("--methods", nargs="+", default=["best_of_n", "beam", "mcts", "particle_filter"])
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="folder for records, summary and plots")
    add_engine_args(parser)
    parser.set_defaults(func=run, prm_backend="hf", prm=None)  # None: the best PRM the project ships


def run(args: argparse.Namespace) -> int:
    from tdrm_search.tasks.lab import generate_problems

    args.out.mkdir(parents=True, exist_ok=True)
    records_path = args.out / "records.jsonl"
    records_path.unlink(missing_ok=True)  # a demo shows a fresh run
    print(
        f"tdrm demo: {args.problems} lab problems, policy={args.policy} ({args.backend}), "
        f"prm={args.prm or 'best shipped'} ({args.prm_backend}); loading engines...",
        flush=True,
    )
    policy, prm = load_engines(args)
    problems = {"lab": generate_problems(args.problems, seed=DEMO_SEED)}
    options = search_options(args)
    bench.run_bench(bench.Grid(problems, ["greedy"], [1], options=options), records_path, policy, prm)
    records = bench.run_bench(
        bench.Grid(problems, args.methods, args.budgets, options=options), records_path, policy, prm
    )
    rows = bench.summarize(records)
    print("\n" + format_table(rows))
    plots = bench.plot(rows, args.out)
    (args.out / "summary.json").write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2))
    greedy = next(r["accuracy"] for r in rows if r["method"] == "greedy")
    best = max((r for r in rows if r["method"] != "greedy"), key=lambda r: r["accuracy"])
    print(f"\ngreedy decoding: {greedy:.1%}; best search: {best['method']} at n={best['n']}: {best['accuracy']:.1%}")
    for r in rows:
        if r["method"] == "best_of_n":  # the verifier's gain over voting on the very same samples
            print(
                f"n={r['n']}: best-of-n with the verifier {r['accuracy']:.1%}, majority vote of the same samples "
                f"{r['majority@n']:.1%}, pass@n {r['pass@n']:.1%}"
            )
    files = {
        records_path: f"{len(records)} records, one per problem, method and budget",
        args.out / "summary.json": "the table",
    }
    print_files(files | dict.fromkeys(plots, "plot"))
    return 0
