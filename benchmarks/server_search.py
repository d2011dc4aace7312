"""Search against a policy server (issue 30): in-process lockstep, remote lockstep, remote async, and raw generation
through the same server as the ceiling.

The benchmark starts vLLM's OpenAI-compatible server of the lab policy on 127.0.0.1 (`tdrm_search.vllm_server`,
the in-process engine's settings) and stops it at the end; the lab PRM runs in-process on vLLM in every run. Beam
and Best-of-N on lab problems at each n:

- in-process lockstep: `VLLMPolicy` (the engine's own path);
- remote lockstep: `OpenAIPolicy` through the server, one round of every problem at a time;
- remote async: the same policy, each problem advancing as soon as its own requests are done;
- raw: as many tokens sampled through the same server from the same prompts, every request at once
  (`ignore_eos`, fixed length): the ceiling for generation through it.

Generation throughput is generated tokens per second of wall time, end to end (PRM scoring included: in async runs
it overlaps generation); `vs raw` divides it by the raw run's. Lockstep runs also report tokens per second of
generate-call time alone (`gen_tok_s`, as benchmarks/search_cost.py does) and that over the raw run's (`gen_vs_raw`:
generation only, the PRM's share of the wall left out; async runs have none, their generation overlaps scoring).
Remote rows count the HTTP requests sent (`http_requests`: one per expanded node, its children as `n`). Prefix
caches (server and in-process) are emptied before every run. Accuracy is graded against the lab answers.
`--server-args` passes options to the server (every row, the raw one included, runs on that one server).
`--server-cores 0` runs the server on core 0 alone and this process (client, PRM, in-process rows) on the other cores,
as a server on its own machine would be: lockstep and async then differ by their schedule, not by which process the
shared cores serve.

    python benchmarks/server_search.py            # 64 problems, n = 16 and 64 (long on 2 cores)
    python benchmarks/server_search.py --quick    # 8 problems, n = 16: a smoke test of every row

Writes benchmarks/results/server_search.json (or --out) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

from tdrm_search.table import format_table

RESULTS = Path(__file__).parent / "results"
RUNS = ("in-process lockstep", "remote lockstep", "remote async")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--problems", type=int, default=64)
    p.add_argument("--n", type=int, nargs="+", default=[16, 64])
    p.add_argument("--methods", nargs="+", default=["beam", "best_of_n"])
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--problem-seed", type=int, default=2026, help="seed of the lab problems")
    p.add_argument("--concurrency", type=int, default=256, help="requests in flight to the server at most")
    p.add_argument("--runs", nargs="+", default=list(RUNS), choices=RUNS, help="the rows to run (raw always runs)")
    p.add_argument("--server-args", default="", help="extra options for the vLLM server, one string")
    p.add_argument(
        "--server-cores",
        type=int,
        nargs="+",
        help="run the server on these CPU cores only and this process (client, PRM, in-process rows) on the others, "
        "as a server on its own machine would be (default: every process shares every core)",
    )
    p.add_argument("--quick", action="store_true", help="8 problems, n = 16: a smoke test")
    p.add_argument("--out", type=Path, default=RESULTS / "server_search.json")
    args = p.parse_args(argv)
    if args.server_cores:
        from tdrm_search.devices import cpu_pinning

        available = os.sched_getaffinity(0)
        if not set(args.server_cores) <= available:
            p.error(f"--server-cores {args.server_cores}: this process may run on cores {sorted(available)} only")
        args.client_cores = sorted(available - set(args.server_cores))
        if not args.client_cores:
            p.error(f"--server-cores {args.server_cores} leaves no core for the client and the PRM")
        try:  # both sides' engines bind their threads to a range of consecutive cores
            cpu_pinning(args.server_cores), cpu_pinning(args.client_cores)
        except ValueError as err:
            p.error(f"--server-cores {args.server_cores}: {err}")
    if args.quick:
        args.problems, args.n = 8, [16]
    return args


def reset_server_cache(url: str) -> None:
    import httpx

    httpx.post(url.removesuffix("/v1") + "/reset_prefix_cache", timeout=60).raise_for_status()


def run_search(name, method, n, problems, policy, prm, seed, schedule, reset) -> dict:
    from tdrm_search.engine import search_batch

    reset()
    client = getattr(policy, "client", None)
    sent = client.requests if client else 0
    started = time.perf_counter()
    results = search_batch(problems, policy, prm, method=method, n=n, seed=seed, schedule=schedule)
    wall = time.perf_counter() - started
    total = {
        k: sum(r.stats[k] for r in results)
        for k in ("generated_tokens", "prompt_tokens", "cached_prompt_tokens", "prm_tokens", "generate_calls")
    }
    correct = [r.correct for r in results if r.correct is not None]
    row = {
        "run": name,
        "method": method,
        "n": n,
        "schedule": schedule,
        **total,
        "accuracy": sum(correct) / len(correct),
        "correct": [bool(c) for c in correct],
        "wall_s": wall,
        "tok_s": total["generated_tokens"] / wall,
    }
    if client:  # HTTP requests answered (retries not counted)
        row["http_requests"] = client.requests - sent
    if schedule == "lockstep":  # generate-call time is shared by every problem of a round: once
        gen_s = max(r.stats["generate_s"] for r in results)
        row.update(generate_s=gen_s, gen_tok_s=total["generated_tokens"] / gen_s)
    print(f"  {method} n={n} {name}: {wall:.1f}s, acc {row['accuracy']:.3f}, {row['tok_s']:.0f} tok/s", flush=True)
    return row


def run_raw(policy, problems, n: int, tokens: int, url: str) -> dict:
    """About `tokens` tokens sampled through the server from the problems' prompts: one request of n samples per
    problem, all at once."""
    import asyncio

    per_sample = max(1, math.ceil(tokens / (len(problems) * n)))
    reset_server_cache(url)

    async def one(prompt, k):
        body = {
            "model": policy.model,
            "prompt": prompt,
            "n": n,
            "max_tokens": per_sample,
            "temperature": 0.8,
            "ignore_eos": True,
            "seed": k,
            "return_token_ids": True,
        }
        data = await policy.client.post("/completions", body, "raw sample")
        return sum(len(c["token_ids"]) for c in data["choices"])

    async def everything():
        prompts = [policy.encode_prompt(p.question) for p in problems]
        return await asyncio.gather(*(one(prompt, k) for k, prompt in enumerate(prompts)))

    started = time.perf_counter()
    generated = sum(policy.client.run(everything()))
    wall = time.perf_counter() - started
    print(f"  raw n={n}: {wall:.1f}s, {generated / wall:.0f} tok/s", flush=True)
    return {"run": "raw (server)", "n": n, "generated_tokens": generated, "wall_s": wall, "tok_s": generated / wall}


def paired_difference(a: list[bool], b: list[bool]) -> tuple[float, float]:
    """Mean of a - b over problems and its standard error."""
    d = [int(x) - int(y) for x, y in zip(a, b, strict=True)]
    mean = sum(d) / len(d)
    var = sum((x - mean) ** 2 for x in d) / max(1, len(d) - 1)
    return mean, math.sqrt(var / len(d))


def table(rows: list[dict]) -> str:
    def fmt(value, spec: str, suffix: str = "") -> str | None:
        return None if value is None else f"{value:{spec}}{suffix}"

    cells = [
        {
            "method": r.get("method"),
            "n": r["n"],
            "run": r["run"],
            "accuracy": fmt(r.get("accuracy"), ".3f"),
            "generated tokens": fmt(r["generated_tokens"], ","),
            "HTTP requests": fmt(r.get("http_requests"), ","),
            "wall s": fmt(r["wall_s"], ".1f"),
            "tok/s end to end": fmt(r["tok_s"], ".0f"),
            "vs raw": fmt(r.get("vs_raw"), ".2f", "x"),
            "gen-call tok/s": fmt(r.get("gen_tok_s") or None, ".0f"),
            "gen vs raw": fmt(r.get("gen_vs_raw"), ".2f", "x"),
        }
        for r in rows
    ]
    return format_table(cells, markdown=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    from tdrm_search.devices import cpu_pinning
    from tdrm_search.loading import LAB_POLICY, LAB_PRM
    from tdrm_search.policies.remote import OpenAIPolicy
    from tdrm_search.policies.vllm import VLLMPolicy
    from tdrm_search.prms.vllm import VLLMPRM
    from tdrm_search.tasks.lab import generate_problems
    from tdrm_search.vllm_server import vllm_server

    problems = generate_problems(args.problems, seed=args.problem_seed)
    if args.server_cores:  # this process and the engines it starts (the PRM's, the in-process policy's): the rest
        os.sched_setaffinity(0, args.client_cores)
        os.environ.update(cpu_pinning(args.client_cores))
    log = Path(tempfile.gettempdir()) / "tdrm_server_search.server.log"  # the server's own log, for a failed run
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    server_options = {"log": log, "extra": args.server_args.split(), "cores": args.server_cores}
    with vllm_server(LAB_POLICY, name="lab-policy", **server_options) as server:
        remote = OpenAIPolicy(server.url, max_concurrency=args.concurrency)
        local = VLLMPolicy(LAB_POLICY) if RUNS[0] in args.runs else None
        prm = VLLMPRM(LAB_PRM)

        def reset_local():
            local.llm.reset_prefix_cache()  # local exists whenever its row runs
            prm.llm.reset_prefix_cache()

        def reset_remote():
            reset_server_cache(server.url)
            prm.llm.reset_prefix_cache()

        setups = {
            "in-process lockstep": (local, "lockstep", reset_local),
            "remote lockstep": (remote, "lockstep", reset_remote),
            "remote async": (remote, "async", reset_remote),
        }
        for n in args.n:
            for method in args.methods:
                cell = []
                for name in args.runs:
                    policy, schedule, reset = setups[name]
                    cell.append(run_search(name, method, n, problems, policy, prm, args.seed, schedule, reset))
                tokens = next((r for r in cell if r["run"] == RUNS[1]), cell[-1])["generated_tokens"]
                raw = run_raw(remote, problems, n, tokens, server.url)
                raw["method"] = method
                base = cell[0]["correct"] if cell[0]["run"] == RUNS[0] else None
                for row in cell:
                    row["vs_raw"] = row["tok_s"] / raw["tok_s"]
                    if row.get("gen_tok_s"):
                        row["gen_vs_raw"] = row["gen_tok_s"] / raw["tok_s"]
                    if base is not None and row is not cell[0]:
                        row["accuracy_minus_in_process"] = paired_difference(row["correct"], base)
                rows += [*cell, raw]
                setup = vars(args) | {"out": str(args.out), "server_threads_on_cores": server.cores()}
                args.out.write_text(json.dumps({"setup": setup, "rows": rows}, indent=2))
        remote.close()
    print(table(rows))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
