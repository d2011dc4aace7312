"""Accuracy against generated tokens for every search method, with the exact checker and with the shipped PRM.

Best-of-N, beam, DVTS, MCTS and particle filtering at n = 4, 16, 64 on the same lab problems and seeds, the lab
policy on vLLM; once with the oracle (the lab's exact step checker: what search can do with a perfect verifier) and
once with the shipped TD-trained PRM (what a user gets). Records are resumable (runs/search_methods/*.jsonl).

    python benchmarks/search_methods.py                 # 200 problems (about 25 minutes here)
    python benchmarks/search_methods.py --problems 16 --budgets 4 16   # a quick look
    python benchmarks/search_methods.py --seed 7 --methods best_of_n beam --budgets 16 --verifiers shipped
                                                        # a development seed: try a change there first

Writes benchmarks/results/search_methods.json (another --seed: search_methods_seedS.json, its records and plots
apart) and one accuracy-vs-tokens plot per verifier, and prints the table.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from statistics import fmean, stdev

import orjson

from tdrm_search import bench
from tdrm_search.loading import load_policy, load_prm
from tdrm_search.table import format_table
from tdrm_search.tasks.lab import generate_problems

RESULTS = Path(__file__).parent / "results"
EVAL_SEED = 2026  # the demo's evaluation problems; no option of any method was chosen on them
VERIFIERS = {"oracle": ("oracle", "vllm"), "shipped": (None, "hf")}  # name -> (load_prm spec, backend)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=200)
    parser.add_argument("--budgets", type=int, nargs="+", default=[4, 16, 64])
    parser.add_argument("--methods", nargs="+", default=["best_of_n", "beam", "dvts", "mcts", "particle_filter"])
    parser.add_argument("--verifiers", nargs="+", default=list(VERIFIERS), choices=list(VERIFIERS))
    parser.add_argument("--seed", type=int, default=EVAL_SEED, help="problem seed (a development seed: not 2026)")
    parser.add_argument("--runs", type=Path, help="records folder (default runs/search_methods[_seedS])")
    parser.add_argument("--out", type=Path, help="results stem (default benchmarks/results/search_methods[_seedS])")
    args = parser.parse_args()
    suffix, lab = ("", "lab") if args.seed == EVAL_SEED else (f"_seed{args.seed}", f"lab seed {args.seed}")
    args.runs = args.runs or Path(f"runs/search_methods{suffix}")
    args.out = args.out or RESULTS / f"search_methods{suffix}"

    policy = load_policy("lab", "vllm")
    problems = generate_problems(args.problems, seed=args.seed)
    records = []
    for name in args.verifiers:
        spec, backend = VERIFIERS[name]
        grid = bench.Grid({f"{lab}, {name} PRM": problems}, args.methods, args.budgets)
        records += bench.run_bench(grid, args.runs / f"{name}.jsonl", policy, load_prm(spec, backend))
    rows, paired = bench.summarize(records), against_best_of_n(records)
    print(format_table(rows), format_table(paired), sep="\n\n")
    plots = bench.plot([r for r in rows if r["problems"] == args.problems], args.out.parent)
    report = {"problems": args.problems, "problem_seed": args.seed, "rows": rows, "against_best_of_n": paired}
    args.out.with_suffix(".json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print("wrote", args.out.with_suffix(".json"), *plots)


def against_best_of_n(records: list[dict]) -> list[dict]:
    """Each method's accuracy minus Best-of-N's on the same problems, verifier and n: the mean and its standard error
    over problems, and how many problems only one of the two solved."""
    correct = {(r["dataset"], r["method"], r["n"], r["id"]): bool(r["correct"]) for r in records}
    rows = []
    for dataset, method, n in sorted({k[:3] for k in correct if k[1] != "best_of_n"}):
        ids = [k[3] for k in correct if k[:3] == (dataset, method, n) and (dataset, "best_of_n", n, k[3]) in correct]
        diffs = [correct[dataset, method, n, i] - correct[dataset, "best_of_n", n, i] for i in ids]
        if len(diffs) > 1:
            rows.append(
                {
                    "dataset": dataset,
                    "method": method,
                    "n": n,
                    "problems": len(diffs),
                    "minus_best_of_n": fmean(diffs),
                    "se": stdev(diffs) / len(diffs) ** 0.5,
                    "only_it": diffs.count(1),
                    "only_best_of_n": diffs.count(-1),
                }
            )
    return rows


if __name__ == "__main__":
    main()
