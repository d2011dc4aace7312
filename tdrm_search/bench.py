"""The benchmark runner: a dataset x method x budget x seed grid, one JSONL record per (problem, method, n, seed).

Records are appended (orjson), flushed and fsynced one at a time. Re-running resumes: keys already in the file
are skipped, and a torn last line (a run killed mid-write) is cut off first, so a kill loses at most the record
in flight. A problem whose search or grading fails is recorded with status "failed" and its reason.

Problems are searched in chunks (`plan`: `batch_size` problems of one grid cell, cut from the grid alone) by
`run_chunk`, in this process or on Ray replicas (`tdrm_search.distributed`); the run's process is the one writer.
A sharded run (`shard` i/K: every K-th chunk) stamps its records, and `merge` joins the shards' files.

Each dataset is graded under its extraction policies (`Grid.extract`, by default the dataset's own: GSM8K strict
and flexible as lm-evaluation-harness reports it, MATH math-verify's). A record names its primary policy
(`extract`); `answer` and `correct` are that policy's, and `extractions` holds every policy's answer, grades and,
when it found no answer, the reason.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from tdrm_search.aggregate import select
from tdrm_search.config import SearchConfig
from tdrm_search.datasets import extraction_policies
from tdrm_search.ending import final_answer
from tdrm_search.extraction import ENGINE_POLICY, check_policies, extract
from tdrm_search.grading import GradingTimeout, check_all
from tdrm_search.tree_view import write_tree
from tdrm_search.types import Problem, SearchResult

log = logging.getLogger(__name__)

SearchFn = Callable[..., list[SearchResult]]  # search_batch(problems, policy, prm, method=, n=, seed=, **options)
Key = tuple[str, str, str, int, int]  # dataset, problem id, method, n, seed


def record_key(record: dict[str, Any]) -> Key:
    return (record["dataset"], record["id"], record["method"], int(record["n"]), int(record["seed"]))


class RecordLog:
    """An append-only JSONL of records, opened for resuming: torn tail cut off, exclusive lock while open."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            raise ValueError(f"{self.path} is in use by another bench run") from None
        self.records = self._recover()

    def _recover(self) -> list[dict[str, Any]]:
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            log.warning(
                "%s: cutting off a torn last line (%d bytes) left by an interrupted run", self.path, len(data) - end
            )
            os.ftruncate(self._fd, end)
            os.fsync(self._fd)
        records = []
        for lineno, line in enumerate(data[:end].splitlines(), start=1):
            try:
                records.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                log.warning("%s:%d: ignoring a malformed record", self.path, lineno)
        return records

    def append(self, record: dict[str, Any]) -> None:
        """Write one record as one line, durably (a single write, then fsync)."""
        os.write(self._fd, orjson.dumps(record) + b"\n")
        os.fsync(self._fd)
        self.records.append(record)

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> RecordLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Grid:
    """What to run: datasets (name -> problems), methods, budgets n and seeds; extra options go to search.
    `extract` names a dataset's extraction policies (the first is primary) where its own should not be used."""

    datasets: dict[str, list[Problem]]
    methods: Sequence[str]
    budgets: Sequence[int]
    seeds: Sequence[int] = (0,)
    options: dict[str, Any] = field(default_factory=dict)
    extract: dict[str, Sequence[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.extract) - set(self.datasets))
        if unknown:
            raise ValueError(f"extraction policies given for datasets not in the grid: {unknown}")
        for dataset in self.datasets:
            self.policies(dataset)

    def policies(self, dataset: str) -> tuple[str, ...]:
        """The extraction policies that grade `dataset`: those in `extract`, else the dataset's own."""
        given = self.extract.get(dataset)
        return check_policies(given) if given is not None else extraction_policies(dataset)

    def cells(self) -> Iterator[tuple[str, str, int, int]]:
        for dataset in self.datasets:
            for method in self.methods:
                for n in self.budgets:
                    for seed in self.seeds:
                        yield dataset, method, n, seed


def problem_id(problem: Problem, index: int) -> str:
    return problem.id if problem.id is not None else str(index)


def _record(
    dataset: str, problem: Problem, pid: str, method: str, n: int, seed: int, options: dict[str, Any], extract: str
) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "id": pid,
        "method": method,
        "n": n,
        "seed": seed,
        "options": options,
        "extract": extract,
        "gold": problem.answer,
        "level": problem.meta.get("level"),
        "subject": problem.meta.get("subject"),
    }


@dataclass(frozen=True)
class Grading:
    """How one grid cell's records are graded: extraction policies (the first is primary), the search's selection
    rule (to choose again under a policy), and the time bound of one comparison."""

    policies: tuple[str, ...]
    selection: str
    timeout_s: float


def result_record(base: dict[str, Any], result: SearchResult, wall_s: float, grading: Grading) -> dict[str, Any]:
    """A finished search as a record, graded under each extraction policy (the first is primary); a grader
    timeout makes it a failed one."""
    stats = dict(result.stats)
    record = {
        **base,
        "status": "ok",
        "error": None,
        "answer": result.answer,
        "score": result.best.score if result.best is not None else None,
        "generated_tokens": int(stats.get("generated_tokens", 0)),
        "wall_s": wall_s,
        "stats": stats,
    }
    try:
        extractions = {
            p: grade_extraction(result, p, grading.selection, base["gold"], grading.timeout_s) for p in grading.policies
        }
    except GradingTimeout as err:
        record.update(status="failed", error=f"grader timeout: {err}", correct=False)
        return record
    primary = extractions[grading.policies[0]]
    record.update(
        answer=primary["answer"],
        correct=primary["correct"],
        majority_correct=primary["majority_correct"],
        pass_correct=primary["pass_correct"],
        extractions=extractions,
    )
    return record


def under_policy(result: SearchResult, policy: str, selection: str) -> SearchResult:
    """`result` as search would have returned it had it read answers under extraction `policy`: each candidate's
    answer read from its text, the choice made again by `selection`. The engine's own policy changes nothing."""
    if policy == ENGINE_POLICY:
        return result
    candidates = [
        replace(t, answer=final_answer(t.steps[-1] if t.steps else "", t.text, policy)) for t in result.candidates
    ]
    best = select(candidates, selection)
    return replace(result, answer=best.answer if best else None, best=best, candidates=candidates)


def grade_extraction(
    result: SearchResult, policy: str, selection: str, gold: str | None, timeout_s: float
) -> dict[str, Any]:
    """One extraction policy's answer and grades of a result, and the reason when it found no answer."""
    seen = under_policy(result, policy, selection)
    if seen.answer is not None:
        reason = None
    elif seen.best is None:
        reason = "the search returned no solution"
    else:
        reason = extract(seen.best.text, policy).reason
    return {"answer": seen.answer, **grade_candidates(seen, gold, timeout_s), "reason": reason}


def grade_candidates(result: SearchResult, gold: str | None, timeout_s: float) -> dict[str, bool | None]:
    """Whether the chosen answer is right, and the no-verifier references on the same candidates: the majority
    answer (self-consistency) and pass (any candidate right). Each distinct answer is graded once, all at once over
    the grading worker processes (`grading.use_workers`)."""
    if gold is None:
        return {"correct": None, "majority_correct": None, "pass_correct": None}
    answers = sorted({t.answer for t in result.candidates if t.answer is not None} | {result.answer} - {None})
    right = dict(zip(answers, check_all([(a, gold) for a in answers], timeout_s), strict=True))
    vote = select(result.candidates, "majority")
    return {
        "correct": bool(right.get(result.answer, False)),
        "majority_correct": vote is not None and bool(right.get(vote.answer, False)),
        "pass_correct": any(right.values()),
    }


# what differs between two runs of the same search: times, and prefix-cache hits (they depend on what the engine ran
# before)
VOLATILE = frozenset({"wall_s", "generate_s", "score_s", "cached_prompt_tokens", "prm_cached_tokens"})


def reproducible(record: dict[str, Any]) -> dict[str, Any]:
    """A record without its `VOLATILE` fields (its stats' included): what two runs of the same grid agree on, on 1 or
    K replicas or in shards merged (see `tdrm_search.distributed` for what is reproducible)."""
    out = {k: v for k, v in record.items() if k not in VOLATILE}
    return out | {"stats": {k: v for k, v in (record.get("stats") or {}).items() if k not in VOLATILE}}


def failed_record(base: dict[str, Any], error: str) -> dict[str, Any]:
    return {
        **base,
        "status": "failed",
        "error": error,
        "answer": None,
        "score": None,
        "correct": False,
        "generated_tokens": 0,
        "wall_s": None,
        "stats": {},
    }


@dataclass(frozen=True)
class Chunk:
    """The problems of one grid cell that go to one search call. Chunk boundaries are a function of the grid and the
    batch size only (never of a resume, a shard or the number of replicas): `index` numbers every chunk of the grid
    in order, done or not, and `problems` holds the chunk's problems not yet in the results file."""

    index: int
    dataset: str
    method: str
    n: int
    seed: int
    problems: tuple[tuple[int, Problem], ...]  # (position in the dataset, problem)
    options: dict[str, Any]
    grading: Grading
    shard: dict[str, Any] | None = None  # a sharded run's `shard_stamp`, written into its records

    @property
    def cell(self) -> tuple[str, str, int, int]:
        return self.dataset, self.method, self.n, self.seed

    def bases(self) -> list[dict[str, Any]]:
        """The identifying part of each of the chunk's records."""
        extract = self.grading.policies[0]
        bases = [
            _record(self.dataset, p, problem_id(p, i), self.method, self.n, self.seed, self.options, extract)
            for i, p in self.problems
        ]
        return [{**base, "shard": self.shard} for base in bases] if self.shard else bases

    def failed(self, error: str) -> list[dict[str, Any]]:
        """Every problem of the chunk as a failed record with `error` as its reason."""
        return [failed_record(base, error) for base in self.bases()]


Pair = tuple[dict[str, Any], SearchResult | None]  # a record and its search result (None for a failed one)
Execute = Callable[[list[Chunk]], Iterable[tuple[Chunk, list[Pair]]]]  # runs chunks, yields each one's records


def plan(
    grid: Grid, done: set[Key], batch_size: int, grader_timeout: float, shard: tuple[int, int] | None = None
) -> list[Chunk]:
    """The chunks a run still has to search: each cell's problems cut in runs of `batch_size` in dataset order, the
    problems already `done` left out, chunks with none left dropped; with `shard` (i, K), the chunks whose index is
    i modulo K."""
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    selection = grid.options.get("selection", SearchConfig.selection)
    stamp = shard_stamp(grid, batch_size, shard)
    chunks, index = [], 0
    for cell in grid.cells():
        dataset = cell[0]
        grading = Grading(grid.policies(dataset), selection, grader_timeout)
        numbered = list(enumerate(grid.datasets[dataset]))
        for start in range(0, len(numbered), batch_size):
            todo = tuple(
                (i, p)
                for i, p in numbered[start : start + batch_size]
                if (dataset, problem_id(p, i), *cell[1:]) not in done
            )
            if todo and (shard is None or index % shard[1] == shard[0]):
                chunks.append(Chunk(index, *cell, todo, grid.options, grading, stamp))
            index += 1
    return chunks


def parse_shard(spec: str) -> tuple[int, int]:
    """ "i/K" (shard i of K, i counted from 0, as Slurm's array task ids) as (i, K)."""
    index, slash, count = spec.partition("/")
    if not (slash and index.strip().isdigit() and count.strip().isdigit()) or not 0 <= int(index) < int(count):
        raise ValueError(f"shard {spec!r}: expected i/K with 0 <= i < K (shard i of K, counted from 0)")
    return int(index), int(count)


def shard_stamp(grid: Grid, batch_size: int, shard: tuple[int, int] | None) -> dict[str, Any] | None:
    """What a sharded run writes into each record: its shard, the shard count and a fingerprint of the grid (problems,
    methods, budgets, seeds, options, extraction policies, batch size), so `merge` joins only shards of one run."""
    if shard is None:
        return None
    grid_data = {
        "datasets": {
            d: [problem_id(p, i) + "\0" + p.question for i, p in enumerate(ps)] for d, ps in grid.datasets.items()
        },
        "cells": list(grid.cells()),
        "options": grid.options,
        "extract": {d: grid.policies(d) for d in grid.datasets},
        "batch_size": batch_size,
    }
    digest = hashlib.sha256(orjson.dumps(grid_data, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
    return {"index": shard[0], "count": shard[1], "grid": digest}


def merge(out: str | Path, shards: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Join the results files of every shard of one sharded run into a new results file `out`, as the unsharded run
    would have written it (records without their shard stamp). Refuses files of other grids or runs, a shard missing
    or given twice, a key in two shards, and an `out` that exists; writes `out` whole or not at all."""
    out = Path(out)
    if out.exists() and out.stat().st_size:
        raise ValueError(f"{out} exists: merge writes a new results file")
    if not shards:
        raise ValueError("merge needs the results file of every shard")
    records, stamps = [], {}
    for path in shards:
        if not Path(path).is_file():
            raise ValueError(f"{path}: no such results file")
        with RecordLog(path) as shard:
            found = {orjson.dumps(r.get("shard"), option=orjson.OPT_SORT_KEYS) for r in shard.records}
            if len(found) != 1 or b"null" in found:
                raise ValueError(f"{path}: not the results of one shard (written with --shard i/K)")
            stamp = shard.records[0]["shard"]
            first = next(iter(stamps.values()), stamp)
            if (stamp["count"], stamp["grid"]) != (first["count"], first["grid"]):
                raise ValueError(f"{path} is a shard of another run (grid, options or shard count differ)")
            again = [p for p, s in stamps.items() if s["index"] == stamp["index"]]
            if again:
                raise ValueError(f"{path} and {again[0]} are both shard {stamp['index']}/{stamp['count']}")
            stamps[path] = stamp
            records += [{k: v for k, v in r.items() if k != "shard"} for r in shard.records]
    missing = sorted(set(range(first["count"])) - {s["index"] for s in stamps.values()})
    if missing:
        raise ValueError(f"shards {', '.join(str(i) for i in missing)} of {first['count']} are missing")
    twice = [key for key, times in Counter(map(record_key, records)).items() if times > 1]
    if twice:
        raise ValueError(f"{len(twice)} records are in two shards, e.g. {twice[0]}")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    os.replace(partial, out)
    return records


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


# ---------------------------------------------------------------- summary and plots


def summarize(
    records: Iterable[dict[str, Any]], by: Sequence[str] = ("dataset", "method", "n")
) -> list[dict[str, Any]]:
    """Accuracy (failed records count as wrong), failures, mean generated tokens and seconds per problem, per group.
    When the records were graded under several extraction policies, each one's accuracy too ("accuracy[flexible]")."""
    records = list(records)
    policies = list(dict.fromkeys(p for r in records for p in r.get("extractions") or {}))
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[tuple(r.get(k) for k in by)].append(r)
    rows = []
    for key in sorted(
        groups, key=lambda k: tuple((v is None, v if isinstance(v, (int, float)) else str(v)) for v in k)
    ):
        rs = groups[key]
        ok = [r for r in rs if r["status"] == "ok"]
        rows.append(
            {
                **dict(zip(by, key, strict=True)),
                "problems": len(rs),
                "failed": len(rs) - len(ok),
                "accuracy": sum(bool(r["correct"]) for r in rs) / len(rs),
                **({f"accuracy[{p}]": share(rs, "correct", p) for p in policies} if len(policies) > 1 else {}),
                "majority@n": share(rs, "majority_correct"),
                "pass@n": share(rs, "pass_correct"),
                "mean_tokens": sum(r["generated_tokens"] for r in ok) / len(ok) if ok else None,
                "s_per_problem": sum(r["wall_s"] for r in ok) / len(ok) if ok else None,
            }
        )
    return rows


def share(records: list[dict[str, Any]], key: str, policy: str | None = None) -> float | None:
    """The share of records whose `key` is true, under extraction `policy` when one is named (failed ones count
    as false); None when no record has it."""
    values = [(r.get("extractions") or {}).get(policy, {}).get(key) if policy else r.get(key) for r in records]
    if all(v is None for v in values):
        return None
    return sum(bool(v) for v in values) / len(values)


def format_rows(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of summary rows."""
    if not rows:
        return "(no records)"
    cols = list(rows[0])
    cell = lambda v: "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)  # noqa: E731
    widths = {c: max(len(c), *(len(cell(r[c])) for r in rows)) for c in cols}
    lines = ["  ".join(c.rjust(widths[c]) for c in cols)]
    lines += ["  ".join(cell(r[c]).rjust(widths[c]) for c in cols) for r in rows]
    return "\n".join(lines)


REFERENCES = (("majority@n", "majority vote", "--"), ("pass@n", "pass@n", ":"))  # of Best-of-N's own samples


def plot(rows: list[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """Per dataset, two PNGs from `summarize` rows: accuracy vs budget n, and vs mean generated tokens. Majority
    vote and pass@n of Best-of-N's samples are drawn as grey reference lines: what no verifier, and a perfect
    one, would make of the same samples."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for dataset in sorted({r["dataset"] for r in rows}):
        for x, label in (("n", "budget n"), ("mean_tokens", "mean generated tokens per problem")):
            fig, ax = plt.subplots(figsize=(7.5, 3.6))
            for method in sorted({r["method"] for r in rows if r["dataset"] == dataset}):
                points = sorted(
                    (r[x], r["accuracy"])
                    for r in rows
                    if r["dataset"] == dataset and r["method"] == method and r[x] is not None
                )
                if points:
                    ax.plot(*zip(*points, strict=True), marker="o", label=method)
            samples = [r for r in rows if r["dataset"] == dataset and r["method"] == "best_of_n" and r[x] is not None]
            for key, name, style in REFERENCES:
                points = sorted((r[x], r[key]) for r in samples if r[key] is not None)
                if points:
                    ax.plot(*zip(*points, strict=True), style, color="grey", label=f"{name} (Best-of-N's samples)")
            ax.set_xscale("log", base=2 if x == "n" else 10)
            ax.set(xlabel=label, ylabel="accuracy", title=dataset, ylim=(0, 1.02))
            ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.02, 0.5))
            ax.grid(alpha=0.3)
            stem = re.sub(r"[^\w.-]+", "_", dataset)
            path = out_dir / f"{stem}_accuracy_vs_{'budget' if x == 'n' else 'tokens'}.png"
            fig.tight_layout()
            fig.savefig(path, dpi=120)
            plt.close(fig)
            paths.append(path)
    return paths
