"""An async client for an OpenAI-compatible server (vLLM, SGLang), shared by the remote policy and PRM.

httpx with one connection pool, at most `max_concurrency` requests in flight, a timeout per request, and retries
with exponential backoff on connection errors, timeouts and 5xx answers (and 429). A 4xx answer is not retried: it
raises `RemoteRequestError`, one line naming the endpoint, the request and the server's message (a wrong model
name, a prompt longer than the context). The client owns an event loop on a daemon thread, so synchronous callers
(the lockstep driver) and asynchronous ones (the async driver, `tdrm serve`) share one pool.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import Coroutine
from typing import Any

import orjson

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 429, 500, 502, 503, 504}


class RemoteRequestError(ValueError):
    """The server refused a request (4xx): one line, naming the request."""


class RemoteUnavailableError(ConnectionError):
    """The server could not be reached, or kept failing, after every retry."""


def first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0][:400]


def server_message(body: bytes) -> str:
    """The message of an OpenAI-style error body ({"error": {"message": ...}}, or FastAPI's {"detail": ...})."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return first_line(body.decode(errors="replace"))
    if isinstance(data, dict):
        error = data.get("error", data.get("detail", data))
        if isinstance(error, dict):
            error = error.get("message", error)
        return first_line(str(error))
    return first_line(str(data))


class RemoteClient:
    """POSTs JSON to `base_url` (ending in /v1) with bounded concurrency, timeouts and retries."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        max_concurrency: int = 256,
        timeout_s: float = 600.0,
        retries: int = 5,
        backoff_s: float = 0.5,
    ):
        import httpx

        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"remote server URL {base_url!r} must start with http:// or https://")
        self.base_url = base_url.rstrip("/")
        self.retries, self.backoff_s, self.timeout_s = retries, backoff_s, timeout_s
        self.headers = {"Content-Type": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.max_concurrency = max_concurrency
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="tdrm-remote", daemon=True)
        self.thread.start()
        limits = httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency)

        async def setup():
            self.semaphore = asyncio.Semaphore(max_concurrency)
            self.http = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=30.0), limits=limits)

        self.run(setup())
        self.requests = 0  # requests answered (retries not counted)
        self.retried = 0  # attempts retried

    def run(self, coro: Coroutine) -> Any:
        """Run `coro` on the client's loop and wait for it (from any thread but the loop's own)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def submit(self, coro: Coroutine) -> asyncio.Future:
        """Run `coro` on the client's loop; an asyncio future of the caller's running loop."""
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def get(self, path: str) -> dict:
        async def fetch():
            return await self.call("GET", path, None, f"GET {path}")

        return self.run(fetch())

    async def post(self, path: str, body: dict, what: str) -> dict:
        """POST `body` to `path`; `what` names the request in errors."""
        async with self.semaphore:
            return await self.call("POST", path, body, what)

    async def call(self, method: str, path: str, body: dict | None, what: str) -> dict:
        import httpx

        url = self.base_url + path
        content = orjson.dumps(body) if body is not None else None
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = await self.http.request(method, url, content=content, headers=self.headers)
            except (httpx.TransportError, httpx.TimeoutException) as err:
                if last:
                    raise RemoteUnavailableError(
                        f"{url}: {what}: {type(err).__name__} {first_line(str(err))} after {self.retries} retries"
                    ) from None
                await self.pause(attempt, f"{what}: {type(err).__name__}")
                continue
            if response.status_code < 400:
                self.requests += 1
                return orjson.loads(response.content)
            message = server_message(response.content)
            if response.status_code in RETRY_STATUS and not last:
                await self.pause(attempt, f"{what}: HTTP {response.status_code} {message}")
                continue
            if response.status_code in RETRY_STATUS:
                raise RemoteUnavailableError(
                    f"{url}: {what}: HTTP {response.status_code} {message} after {self.retries} retries"
                )
            raise RemoteRequestError(f"{url}: {what}: HTTP {response.status_code}: {message}")
        raise AssertionError("unreachable")

    async def pause(self, attempt: int, why: str) -> None:
        self.retried += 1
        delay = self.backoff_s * 2**attempt * (0.5 + random.random())  # jittered exponential backoff
        log.warning("retrying in %.2f s: %s", delay, why)
        await asyncio.sleep(delay)

    def close(self) -> None:
        if self.loop.is_running():
            self.run(self.http.aclose())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


def served_model(client: RemoteClient, model: str | None) -> dict:
    """The /v1/models entry to use: the one named `model`, else the only (first) one served. A wrong name is a
    one-line error listing the served names."""
    data = client.get("/models").get("data") or []
    names = [m.get("id") for m in data]
    if model is None:
        if not data:
            raise RemoteRequestError(f"{client.base_url}/models lists no model")
        return data[0]
    for entry in data:
        if entry.get("id") == model:
            return entry
    raise RemoteRequestError(f"{client.base_url}: no model named {model!r}; the server serves {names}")
