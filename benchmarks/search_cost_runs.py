"""The measurements behind benchmarks/search_cost.py: engine searches timed against raw generation on the same
prompts, the one-call-per-node baseline, accuracy on solvable problems, and the transformers memory check (run in
subprocesses of its own)."""

from __future__ import annotations

import math
import resource
import time
from pathlib import Path

from tdrm_search.baselines.one_call_per_node import FullPathRescoring, OneCallPerNode
from tdrm_search.cost import prm_tree_tokens

STEPS: list = []  # the policy engine's StepCounter, once main has built it


GSM8K = Path(__file__).resolve().parents[2] / "shared/data/gsm8k_test.jsonl"


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
