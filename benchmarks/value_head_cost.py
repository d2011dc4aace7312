"""What scoring a search costs with a value-head PRM (TDRM's scalar form): tdrm against TDRM's own scorer.

    python benchmarks/value_head_cost.py --prm PATH [--problems 8] [--n 16,64] [--max-steps 8] [--results DIR]

Beam search on lab problems deep enough to reach `max_steps`, the lab policy generating on vLLM, one value-head
PRM scoring in three ways, same seeds: `HFPRM` (prefix key/value store), the same model as TDRM's search scores
(`FullSequencePRM`: every child prefix a full sequence, batch size 1) and `VLLMPRM` (`classify`, prefix cache).
Counts are tokens the PRM computed (given minus served from a cache) against the tree's unique tokens in the
value head's encoding: the question's conversation once, then per distinct path its new step and its own
end-of-turn tokens. Writes benchmarks/results/value_head_cost.{json,md} and prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tdrm_search import search_batch
from tdrm_search.baselines.full_sequence_prm import FullSequencePRM
from tdrm_search.cost import prm_tree_tokens
from tdrm_search.loading import LAB_POLICY
from tdrm_search.prms.hf import HFPRM
from tdrm_search.prms.vllm import VLLMPRM
from tdrm_search.table import format_table
from tdrm_search.tasks.lab import generate_problems

RESULTS = Path(__file__).parent / "results"
COLUMNS = [
    "run",
    "n",
    "nodes",
    "prm_tokens",
    "prm_cached_tokens",
    "prm_computed",
    "unique",
    "trie",
    "computed_vs_unique",
    "computed_vs_trie",
    "score_s",
    "wall_s",
]


def run(name: str, problems, policy, scorer, prm, n: int, args) -> dict:
    if hasattr(prm, "llm"):
        prm.llm.reset_prefix_cache()
    policy.llm.reset_prefix_cache()
    started = time.perf_counter()
    results = search_batch(
        problems,
        policy,
        scorer,
        method="beam",
        n=n,
        seed=args.seed,
        max_steps=args.max_steps,
        max_step_tokens=64,
        max_tokens=1024,
    )
    wall = time.perf_counter() - started
    given = sum(r.stats["prm_tokens"] for r in results)
    cached = sum(r.stats["prm_cached_tokens"] for r in results)
    counts = [prm_tree_tokens(prm, r) for r in results]
    unique, trie = sum(c[0] for c in counts), sum(c[1] for c in counts)
    row = {
        "run": name,
        "n": n,
        "nodes": sum(r.stats["nodes"] for r in results),
        "prm_tokens": given,
        "prm_cached_tokens": cached,
        "prm_computed": given - cached,
        "unique": unique,
        "trie": trie,
        "computed_vs_unique": (given - cached) / unique,
        "computed_vs_trie": (given - cached) / trie,
        "score_s": results[0].stats["score_s"],
        "wall_s": wall,
        "max_depth": max(node.depth for r in results for node in r.tree.nodes),
        "steps": [[list(c.steps) for c in r.candidates] for r in results],
    }
    print(f"  {name} n={n}: {wall:.1f}s", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prm", type=Path, required=True, help="a value-head PRM folder (tdrm_prm.json head value)")
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--n", dest="ns", type=lambda s: [int(x) for x in s.split(",")], default=[16, 64])
    parser.add_argument("--max-steps", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hf-cache-tokens", type=int, default=None, help="HFPRM store bound (default: HFPRM's)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of value_head_cost.json and .md")
    args = parser.parse_args()
    from tdrm_search.policies.vllm import VLLMPolicy

    policy = VLLMPolicy(LAB_POLICY, seed=args.seed)
    vllm_prm = VLLMPRM(args.prm)
    problems = generate_problems(args.problems, seed=11, num_ops=args.max_steps - 1)
    rows = []
    for n in args.ns:
        store = {} if args.hf_cache_tokens is None else {"cache_tokens": args.hf_cache_tokens}
        hf = HFPRM(args.prm, **store)  # a fresh store per run
        rows.append(
            run("tdrm HFPRM", problems, policy, hf, hf, n, args)
            | {
                "store_tokens_limit": hf.kv.max_tokens,
                "store_tokens_end": hf.kv.tokens,
                "store_mb_end": hf.kv.bytes / 2**20,
            }
        )
        rows.append(run("TDRM-style full sequences", problems, policy, FullSequencePRM(hf), hf, n, args))
        rows.append(run("tdrm VLLMPRM", problems, policy, vllm_prm, vllm_prm, n, args))
    by = {(r["run"], r["n"]): r for r in rows}
    ratios = {
        f"n={n}": {
            "prm_computed_baseline_over_ours_hf": by[("TDRM-style full sequences", n)]["prm_computed"]
            / by[("tdrm HFPRM", n)]["prm_computed"],
            "hf_computed_vs_unique": by[("tdrm HFPRM", n)]["computed_vs_unique"],
            "vllm_computed_vs_unique": by[("tdrm VLLMPRM", n)]["computed_vs_unique"],
            "same_trees_hf_vs_baseline": by[("tdrm HFPRM", n)]["steps"]
            == by[("TDRM-style full sequences", n)]["steps"],
            "score_s_baseline_over_ours_hf": by[("TDRM-style full sequences", n)]["score_s"]
            / by[("tdrm HFPRM", n)]["score_s"],
        }
        for n in args.ns
    }
    for row in rows:
        row.pop("steps")
    report = {
        "prm": str(args.prm),
        "problems": len(problems),
        "max_steps": args.max_steps,
        "hf_store": [
            {k: r[k] for k in ("n", "store_tokens_limit", "store_tokens_end", "store_mb_end")}
            for r in rows
            if "store_tokens_limit" in r
        ],
        "command": " ".join(["python", *sys.argv]),
        "rows": rows,
        "ratios": ratios,
    }
    shown = format_table(rows, COLUMNS, markdown=True, floatfmt=".3g")
    print(shown)
    print(json.dumps(ratios, indent=2))
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "value_head_cost.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.results / "value_head_cost.md").write_text(
        f"# Value-head PRM scoring cost (lab, depth {args.max_steps}, {len(problems)} problems)\n\n"
        f"`{report['command']}`\n\n{shown}\n\nRatios:\n\n```json\n{json.dumps(ratios, indent=2)}\n```\n"
    )


if __name__ == "__main__":
    main()
