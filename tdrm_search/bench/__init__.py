"""The benchmark runner: a dataset x method x budget x seed grid, one JSONL record per (problem, method, n, seed).

`records` keeps the results file (append-only, resumable), `plan` cuts the grid into chunks (and shards, merged
again by `merge`), `run` searches the chunks and writes their records, `grade` grades a result under each
extraction policy, `report` turns records into the summary table and plots.
"""

from tdrm_search.bench.plan import Grid, merge, parse_shard, plan
from tdrm_search.bench.records import RecordLog, record_key, reproducible
from tdrm_search.bench.report import plot, summarize
from tdrm_search.bench.run import check_trees, run_bench

__all__ = [
    "Grid",
    "RecordLog",
    "check_trees",
    "merge",
    "parse_shard",
    "plan",
    "plot",
    "record_key",
    "reproducible",
    "run_bench",
    "summarize",
]
