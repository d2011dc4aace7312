"""What a run searches: the grid, its chunks (cut from the grid and the batch size alone), shards and merge.

Problems are searched in chunks (`plan`: `batch_size` problems of one grid cell). A sharded run (`shard` i/K: every
K-th chunk) stamps its records, and `merge` joins the shards' files.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tdrm_search.bench.grade import Grading
from tdrm_search.bench.records import Key, RecordLog, base_record, failed_record, problem_id, record_key
from tdrm_search.config import SearchConfig
from tdrm_search.datasets import extraction_policies
from tdrm_search.extraction import check_policies
from tdrm_search.types import Problem


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
            base_record(self.dataset, p, problem_id(p, i), self.method, self.n, self.seed, self.options, extract)
            for i, p in self.problems
        ]
        return [{**base, "shard": self.shard} for base in bases] if self.shard else bases

    def failed(self, error: str) -> list[dict[str, Any]]:
        """Every problem of the chunk as a failed record with `error` as its reason."""
        return [failed_record(base, error) for base in self.bases()]


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
