"""search_cost's transformers check: a deep beam with bounded and unbounded key/value stores, each run in a
subprocess of its own so its memory high-water mark is its own."""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

from search_cost_runs import FixedPRM, after_each_call, model_path, peak_rss_mb, problems_for

from tdrm_search.cost import prm_tree_tokens


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
