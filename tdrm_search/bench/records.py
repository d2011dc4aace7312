"""The results file: one JSONL record per (dataset, problem, method, n, seed), appended one at a time.

Records are appended (orjson), flushed and fsynced one at a time. Re-running resumes: keys already in the file
are skipped, and a torn last line (a run killed mid-write) is cut off first, so a kill loses at most the record
in flight. A problem whose search or grading fails is recorded with status "failed" and its reason.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import Any

import orjson

from tdrm_search.types import Problem

log = logging.getLogger(__name__)


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


def problem_id(problem: Problem, index: int) -> str:
    return problem.id if problem.id is not None else str(index)


def base_record(
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
