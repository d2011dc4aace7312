"""Accuracy against generated tokens for every search method, with the exact checker and with the shipped PRM.

Best-of-N, beam, DVTS, MCTS and particle filtering at n = 4, 16, 64 on the same lab problems and seeds, the lab
policy on vLLM; once with the oracle (the lab's exact step checker: what search can do with a perfect verifier) and
once with the shipped TD-trained PRM (what a user gets). Records are resumable (runs/search_methods/*.jsonl).

    python benchmarks/search_methods.py                 # 200 problems (about 25 minutes here)
    python benchmarks/search_methods.py --problems 16 --budgets 4 16   # a quick look

Writes benchmarks/results/search_methods.json and one accuracy-vs-tokens plot per verifier, and prints the table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson

from tdrm_search import bench
from tdrm_search.loading import load_policy, load_prm
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
    parser.add_argument("--runs", type=Path, default=Path("runs/search_methods"))
    parser.add_argument("--out", type=Path, default=RESULTS / "search_methods")
    args = parser.parse_args()

    policy = load_policy("lab", "vllm")
    problems = generate_problems(args.problems, seed=EVAL_SEED)
    records = []
    for name in args.verifiers:
        spec, backend = VERIFIERS[name]
        grid = bench.Grid({f"lab, {name} PRM": problems}, args.methods, args.budgets)
        records += bench.run_bench(grid, args.runs / f"{name}.jsonl", policy, load_prm(spec, backend))
    rows = bench.summarize(records)
    print(bench.format_rows(rows))
    plots = bench.plot([r for r in rows if r["problems"] == args.problems], args.out.parent)
    args.out.with_suffix(".json").write_bytes(
        orjson.dumps({"problems": args.problems, "eval_seed": EVAL_SEED, "rows": rows}, option=orjson.OPT_INDENT_2)
    )
    print("wrote", args.out.with_suffix(".json"), *plots)


if __name__ == "__main__":
    main()
