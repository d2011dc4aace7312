"""Does a PRM rank one problem's solutions? Held-out Best-of-N, within-problem AUC and step AUC against majority vote.

    python benchmarks/prm_pool_eval.py EVAL.jsonl PRM [PRM ...] [--problems 30] [--out results.json]

EVAL.jsonl is a labelled pool from `tdrm prm collect --split eval -n 64` (never training problems); each PRM is
"lab", "oracle" or a folder, scored on transformers. Prints one JSON line per PRM after the no-verifier references
(majority vote and pass@n on the same pools) and writes them all to --out.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from prm_lab_report import NS, baselines

from prm_train.data import read_rollouts
from prm_train.evaluate import evaluate_prm, pools_by_problem
from tdrm_search.loading import load_prm


def first_problems(rollouts, count: int):
    pools = pools_by_problem(rollouts)[:count]
    return [rollouts[i] for pool in pools for i in pool]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rollouts", type=Path)
    parser.add_argument("prms", nargs="+")
    parser.add_argument("--problems", type=int, default=30)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rollouts = first_problems(read_rollouts(args.rollouts), args.problems)
    report = {"rollouts": str(args.rollouts), "problems": args.problems, "pool": len(rollouts)}
    report |= baselines(rollouts, NS)
    print(json.dumps(report), flush=True)
    report["prms"] = {}
    for spec in args.prms:
        out = evaluate_prm(load_prm(spec, backend="hf"), rollouts, NS)
        row = {k: out[k] for k in ("best_of_n", "within_problem_auc", "step_auc", "first_error")}
        report["prms"][spec] = row
        print(json.dumps({"prm": spec, **row}), flush=True)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
