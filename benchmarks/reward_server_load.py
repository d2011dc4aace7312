"""Load test of the reward server on 127.0.0.1: `tdrm serve-reward` in a subprocess, N OpenRLHF-format requests
at C concurrent (bounded in count and total time), errors counted, latency percentiles reported; one server and
one run per `--grade-workers` count (the server's grading worker processes).

    python -m benchmarks.reward_server_load [--prm lab|random|PATH] [--requests 1000] [--concurrency 32]
writes benchmarks/results/reward_server_load.json. Binds and calls 127.0.0.1 only. Grading alone, at 1 and 2
worker processes (half the completions are right and answered without a worker, half wrong and compared in one):
    python -m benchmarks.reward_server_load --mode rule --grade-workers 1 2 \
        --out benchmarks/results/reward_server_load_rule.json
and where grading is the work (MATH-500 answers, LaTeX parsed and compared by math-verify):
    python -m benchmarks.reward_server_load --mode rule --answers math500 --grade-workers 1 2 \
        --out benchmarks/results/reward_server_load_math500.json
--prm random: the lab policy's architecture and tokenizer with fresh random weights, an LM-head PRM (the speed
of a lab PRM, meaningless values) for when the trained lab PRM is not there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tdrm_search.datasets import load_dataset
from tdrm_search.tasks.lab import generate_problems, reference_solution

HOST = "127.0.0.1"
RESULTS = Path(__file__).parent / "results" / "reward_server_load.json"
MATH500 = Path(__file__).resolve().parents[2] / "shared/data/math500_test.jsonl"
TEMPLATE = "Q: {question}\nA:\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def payloads(count: int, queries: int, answers: str = "lab") -> list[dict]:
    """OpenRLHF bodies, half right and half wrong: lab problems (the wrong answer 0, a one-line comparison), or
    MATH-500 (each wrong response boxes another problem's answer, so math-verify parses and compares two LaTeX
    expressions: the grading-heavy load)."""
    if answers == "math500":
        problems = load_dataset("math500", path=MATH500)
        problems = [problems[i % len(problems)] for i in range(count * queries + 1)]
        right = [f"The answer is $\\boxed{{{p.answer}}}$." for p in problems]
        wrong = [f"The answer is $\\boxed{{{q.answer}}}$." for q in problems[1:]]
    else:
        problems = generate_problems(count * queries + 1, seed=99)
        right = [reference_solution(p) for p in problems]
        wrong = [r.rsplit(" ", 1)[0] + " 0." for r in right]
    out = []
    for r in range(count):
        chunk = problems[r * queries : (r + 1) * queries]
        prompts = [TEMPLATE.format(question=p.question) for p in chunk]
        responses = [(right if (r + i) % 2 else wrong)[r * queries + i] for i in range(len(chunk))]
        out.append(
            {
                "query": [p + s for p, s in zip(prompts, responses, strict=True)],
                "prompts": prompts,
                "labels": [p.answer for p in chunk],
            }
        )
    return out


def random_prm(folder: Path) -> Path:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from tdrm_search.loading import LAB_POLICY
    from tdrm_search.prms.config import PRMConfig

    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(LAB_POLICY)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(LAB_POLICY).save_pretrained(folder)
    PRMConfig().save(folder)
    return folder


def start_server(args: argparse.Namespace, port: int, prm: str, workers: int) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "tdrm_search.cli",
        "serve-reward",
        "--host",
        HOST,
        "--port",
        str(port),
        "--prm",
        prm,
        "--mode",
        args.mode,
        "--prompt-template",
        TEMPLATE,
        "--torch-threads",
        str(args.torch_threads),
        "--grade-workers",
        str(workers),
    ]
    server = subprocess.Popen(cmd, env=os.environ | {"TDRM_REWARD_TOKEN": args.token})
    deadline = time.time() + 120
    while time.time() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited with {server.returncode}")
        try:
            if httpx.get(f"http://{HOST}:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("server did not start within 120 s")


async def load(url: str, bodies: list[dict], concurrency: int, token: str, time_limit: float) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    gate = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {token}"}

    async def one(client: httpx.AsyncClient, body: dict) -> None:
        async with gate:
            start = time.perf_counter()
            try:
                reply = await client.post(url, json=body, headers=headers)
                ok = reply.status_code == 200 and len(reply.json()["rewards"]) == len(body["query"])
                key = None if ok else f"HTTP {reply.status_code}"
            except (httpx.HTTPError, ValueError, KeyError) as err:
                key = type(err).__name__
            if key is None:
                latencies.append(time.perf_counter() - start)
            else:
                errors[key] = errors.get(key, 0) + 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    start = time.perf_counter()
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        await asyncio.wait_for(asyncio.gather(*[one(client, b) for b in bodies]), time_limit)
    return {"wall_s": time.perf_counter() - start, "latencies": latencies, "errors": errors}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def measure(args: argparse.Namespace, prm: str, workers: int) -> dict:
    """One server with `workers` grading processes, loaded by `args.requests` requests."""
    load_before = os.getloadavg()[0]
    port = free_port()
    server = start_server(args, port, prm, workers)
    try:
        run = asyncio.run(
            load(
                f"http://{HOST}:{port}/get_reward",
                payloads(args.requests, args.queries, args.answers),
                args.concurrency,
                args.token,
                args.time_limit,
            )
        )
        health = httpx.get(f"http://{HOST}:{port}/health").json()
    finally:
        server.terminate()
        server.wait(30)
    lat = run["latencies"]
    done = len(lat)
    return {
        "grade_workers": workers,
        "ok": done,
        "errors": sum(run["errors"].values()),
        "error_kinds": run["errors"],
        "wall_s": round(run["wall_s"], 2),
        "requests_per_s": round(done / run["wall_s"], 1),
        "completions_per_s": round(done * args.queries / run["wall_s"], 1),
        "latency_ms": {f"p{q}": round(1000 * percentile(lat, q), 1) for q in (50, 90, 95, 99)}
        | {"max": round(1000 * max(lat), 1)},
        "batches": health["batches"],
        "mean_completions_per_batch": round(done * args.queries / max(health["batches"], 1), 1),
        "load_average_1m": {"before": round(load_before, 1), "after": round(os.getloadavg()[0], 1)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prm", default="lab")
    parser.add_argument("--mode", default="mix")
    parser.add_argument("--answers", choices=["lab", "math500"], default="lab", help="math500: grading-heavy answers")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--queries", type=int, default=4, help="completions per request")
    parser.add_argument("--grade-workers", type=int, nargs="+", default=[4], help="grading processes, one run each")
    parser.add_argument("--time-limit", type=float, default=600.0, help="seconds for each run")
    parser.add_argument("--torch-threads", type=int, default=1, help="1 avoids oversubscribing a shared 2-core CPU")
    parser.add_argument("--token", default="load-test-token")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:  # a server has loaded the PRM once it answers /health
        prm = str(random_prm(Path(tmp))) if args.prm == "random" and args.mode != "rule" else args.prm
        runs = [measure(args, prm, workers) for workers in args.grade_workers]
    report = {
        "host": HOST,
        "prm": None if args.mode == "rule" else args.prm,
        "mode": args.mode,
        "answers": args.answers,
        "torch_threads": args.torch_threads,
        "requests": args.requests,
        "concurrency": args.concurrency,
        "queries_per_request": args.queries,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
        "runs": runs,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
