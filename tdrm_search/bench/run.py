"""Running a grid: chunks searched by `run_chunk`, in this process or on Ray replicas (`tdrm_search.distributed`),
while this process stays the one writer of the results file, with a progress bar per grid cell."""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tdrm_search.bench.grade import result_record, under_policy
from tdrm_search.bench.plan import Chunk, Grid, plan, shard_stamp
from tdrm_search.bench.records import RecordLog, failed_record, record_key
from tdrm_search.tree_view import write_tree
from tdrm_search.types import SearchResult

log = logging.getLogger(__name__)


SearchFn = Callable[..., list[SearchResult]]  # search_batch(problems, policy, prm, method=, n=, seed=, **options)


Pair = tuple[dict[str, Any], SearchResult | None]  # a record and its search result (None for a failed one)


Execute = Callable[[list[Chunk]], Iterable[tuple[Chunk, list[Pair]]]]  # runs chunks, yields each one's records


def run_bench(
    grid: Grid,
    out: str | Path,
    policy: Any = None,
    prm: Any = None,
    search_fn: SearchFn | None = None,
    batch_size: int = 8,
    grader_timeout: float = 10.0,
    progress: bool = True,
    trees: int = 0,
    trees_dir: str | Path | None = None,
    execute: Execute | None = None,
    shard: tuple[int, int] | None = None,
) -> list[dict[str, Any]]:
    """Run what `out` does not hold yet; return every record of the file (earlier runs' included). With `progress`,
    each grid cell shows a progress bar with its accuracy so far under each extraction policy. With `trees`, the
    search trees of the first `trees` problems each cell runs are drawn as HTML pages in `trees_dir` (default: a
    "trees" folder beside `out`), one per problem, named by `tree_file`.

    Problems go to the search in the chunks `plan` cuts (`batch_size` problems of one cell each). By default each
    chunk runs here, through `search_fn` (the engine's `search_batch` unless given) on `policy` and `prm`: see
    `run_chunk`. `execute` runs them elsewhere instead (`tdrm_search.distributed`); this process stays the one
    writer of `out`, appending records as chunks come back in any order. With `shard` (i, K) only shard i's
    chunks run, and their records say so (`merge` joins the shards' files).
    """
    check_trees(trees)
    if execute is None:
        if search_fn is None:
            from tdrm_search.engine import search_batch as search_fn

        def execute(chunks: list[Chunk]) -> Iterator[tuple[Chunk, list[Pair]]]:
            return ((chunk, run_chunk(chunk, policy, prm, search_fn)) for chunk in chunks)

    with RecordLog(out) as results:
        check_same_run(results, grid.options, shard_stamp(grid, batch_size, shard))
        chunks = plan(grid, {record_key(r) for r in results.records}, batch_size, grader_timeout, shard)
        with Writer(results, chunks, progress, trees, Path(trees_dir or Path(out).parent / "trees")) as writer:
            for chunk, pairs in execute(chunks):
                writer.add(chunk, pairs)
        return results.records


@dataclass
class CellProgress:
    """One grid cell's progress bar, its right answers so far under each extraction policy, and its trees drawn."""

    bar: Any
    right: dict[str, int]
    done: int = 0
    drawn: int = 0


class Writer:
    """Appends chunks' records to the results file as they come back, draws the first trees of each cell and shows
    one progress bar per cell with its accuracy so far under each extraction policy."""

    def __init__(self, results: RecordLog, chunks: list[Chunk], progress: bool, trees: int, trees_dir: Path) -> None:
        self.results, self.progress, self.trees, self.trees_dir = results, progress, trees, trees_dir
        self.left: Counter = Counter()
        for chunk in chunks:
            self.left[chunk.cell] += len(chunk.problems)
        self.cells: dict[tuple, CellProgress] = {}

    def add(self, chunk: Chunk, pairs: list[Pair]) -> None:
        from tqdm import tqdm

        if chunk.cell not in self.cells:
            desc = "{} {} n={} seed={}".format(*chunk.cell)
            bar = tqdm(total=self.left[chunk.cell], desc=desc, disable=not self.progress, dynamic_ncols=True)
            self.cells[chunk.cell] = CellProgress(bar, dict.fromkeys(chunk.grading.policies, 0))
        cell = self.cells[chunk.cell]
        for record, result in pairs:
            self.results.append(record)
            if result is not None and cell.drawn < self.trees:  # the answer and path the record grades
                primary = under_policy(result, chunk.grading.policies[0], chunk.grading.selection)
                cell.drawn += draw_tree(primary, self.trees_dir / tree_file(record))
            cell.done += 1
            for p in cell.right:
                cell.right[p] += bool((record.get("extractions") or {}).get(p, {}).get("correct"))
            cell.bar.update(1)
            cell.bar.set_postfix({f"acc[{p}]": f"{c / cell.done:.3f}" for p, c in cell.right.items()}, refresh=False)
        if cell.done == self.left[chunk.cell]:
            cell.bar.close()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        for cell in self.cells.values():
            cell.bar.close()


def check_same_run(results: RecordLog, options: dict[str, Any], shard: dict[str, Any] | None = None) -> None:
    """Resuming with other search options would mix two experiments in one file (and skip what looks done); so
    would resuming another shard's file, or a sharded run's file without its shard."""
    other = [r["options"] for r in results.records if "options" in r and r["options"] != options]
    if other:
        raise ValueError(
            f"{results.path} holds records searched with options {other[0]}, this run's are {options}: "
            "resume with the same options, or write to another --out"
        )
    stamps = [r.get("shard") for r in results.records if r.get("shard") != shard]
    if stamps:

        def name(s: dict[str, Any] | None) -> str:
            return f"shard {s['index']}/{s['count']} of grid {s['grid']}" if s else "an unsharded run"

        raise ValueError(
            f"{results.path} holds records of {name(stamps[0])}, this run is {name(shard)}: "
            "resume the same shard of the same grid, or write to another --out"
        )


def check_trees(trees: int) -> None:
    if trees < 0:
        raise ValueError(f"trees is how many problems' search trees to draw per grid cell: >= 0, got {trees}")


def run_chunk(chunk: Chunk, policy: Any, prm: Any, search_fn: SearchFn) -> list[Pair]:
    """A chunk's records, each with its search result (None for a failed one): its problems searched in one call,
    or one by one when that call fails (a problem that fails alone is recorded as failed, with the reason)."""
    bases = chunk.bases()
    problems = [p for _, p in chunk.problems]
    start = time.perf_counter()
    try:
        results = search_fn(problems, policy, prm, method=chunk.method, n=chunk.n, seed=chunk.seed, **chunk.options)
        if len(results) != len(problems):
            raise RuntimeError(f"search returned {len(results)} results for {len(problems)} problems")
    except Exception as err:
        if len(problems) == 1:
            log.warning("%s %s: search failed: %s: %s", chunk.dataset, bases[0]["id"], type(err).__name__, err)
            return [(failed_record(bases[0], f"{type(err).__name__}: {err}"), None)]
        log.warning("%s: a chunk of %d failed (%s); retrying one by one", chunk.dataset, len(problems), err)
        return [
            pair
            for item in chunk.problems
            for pair in run_chunk(replace(chunk, problems=(item,)), policy, prm, search_fn)
        ]
    wall_s = (time.perf_counter() - start) / len(problems)
    return [
        (result_record(base, result, wall_s, chunk.grading), result)
        for base, result in zip(bases, results, strict=True)
    ]


def draw_tree(result: SearchResult, path: Path) -> bool:
    """Draw a result's search tree to `path`; a picture that fails is logged, never stops the run."""
    try:
        write_tree(result, path)
    except Exception as err:
        log.warning("could not draw the search tree %s: %s: %s", path, type(err).__name__, err)
        return False
    return True


def tree_file(record: dict[str, Any]) -> str:
    """The file name of a record's tree picture: dataset, method, budget, seed and problem id."""
    name = f"{record['dataset']}_{record['method']}_n{record['n']}_seed{record['seed']}_{record['id']}"
    return re.sub(r"[^\w.-]+", "_", name) + ".html"
