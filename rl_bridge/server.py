"""An HTTP reward server for OpenRLHF's remote reward model option (FastAPI; run with uvicorn).

POST /get_reward {"query": [...], "prompts": [...], "labels": [...]}
    query[i] is prompt + response as OpenRLHF decodes it; prompts[i] its prompt; labels[i] the reference answer.
    -> {"rewards": [...], "scores": [...], "extra_logs": {"rule": [...], "prm": [...], "abstain": [...]}}
    rewards: the scalar reward (abstaining items get `neutral`); scores: the verifiable reward (OpenRLHF's
    dynamic filtering reads it).
POST /score  same request -> {"results": [RewardOutput as JSON, one per query]}: per-step rewards with the
    character position where each step ends in the response.
GET /health -> {"status": "ok", ...}
Concurrent requests are gathered by a micro-batcher into one RewardFunction call (one PRM batch).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from rl_bridge.reward import RewardFunction, RewardItem, RewardOutput, question_from_prompt
from rl_bridge.server_config import ServerConfig
from tdrm_search.bearer import bearer_check

log = logging.getLogger(__name__)


class RewardRequest(BaseModel):
    query: list[str] = Field(min_length=1)
    prompts: list[str] | None = None
    labels: list[str | int | float | None] | None = None


class BodyLimit:
    """ASGI middleware: 413 for a body over `limit` bytes, by Content-Length or as it streams in."""

    def __init__(self, app: Any, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length", b"0")
        if not length.isdigit():
            return await JSONResponse({"detail": "malformed Content-Length header"}, 400)(scope, receive, send)
        if int(length) > self.limit:
            return await JSONResponse({"detail": f"request body over {self.limit} bytes"}, 413)(scope, receive, send)
        seen = 0

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413, f"request body over {self.limit} bytes")
            return message

        await self.app(scope, limited, send)


class MicroBatcher:
    """Gathers items from concurrent requests for up to `window_s` (or `max_batch` items) and scores them in
    one RewardFunction call on a worker thread; one batch at a time."""

    def __init__(self, reward_fn: RewardFunction, max_batch: int, window_s: float):
        self.reward_fn, self.max_batch, self.window_s = reward_fn, max_batch, window_s
        self.queue: asyncio.Queue[tuple[list[RewardItem], asyncio.Future]] = asyncio.Queue()
        self.task: asyncio.Task | None = None
        self.batches = 0

    def start(self) -> None:
        self.task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def score(self, items: list[RewardItem]) -> list[RewardOutput]:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((items, future))
        return await future

    async def run(self) -> None:
        while True:
            pending = [await self.queue.get()]
            size = len(pending[0][0])
            deadline = asyncio.get_running_loop().time() + self.window_s
            while size < self.max_batch:
                try:
                    pending.append(
                        await asyncio.wait_for(self.queue.get(), deadline - asyncio.get_running_loop().time())
                    )
                except TimeoutError:
                    break
                size += len(pending[-1][0])
            await self.flush(pending)

    async def flush(self, pending: list[tuple[list[RewardItem], asyncio.Future]]) -> None:
        items = [item for chunk, _ in pending for item in chunk]
        try:
            outs = await asyncio.to_thread(self.reward_fn.score, items)
        except Exception as err:  # a bug must fail these requests, not the batcher
            log.exception("scoring a batch of %d failed", len(items))
            for _, future in pending:
                if not future.done():
                    future.set_exception(err)
            return
        self.batches += 1
        start = 0
        for chunk, future in pending:
            if not future.done():
                future.set_result(outs[start : start + len(chunk)])
            start += len(chunk)


def response_of(query: str, prompt: str | None) -> str:
    """The response inside OpenRLHF's query (prompt + response)."""
    return query[len(prompt) :] if prompt and query.startswith(prompt) else query


def create_app(reward_fn: RewardFunction, config: ServerConfig | None = None) -> BodyLimit:
    """The ASGI app (the FastAPI app behind the body-size limit, at `.app`); serve it with uvicorn, bound to
    127.0.0.1 unless you mean to expose it."""
    cfg = config or ServerConfig()
    batcher = MicroBatcher(reward_fn, cfg.max_batch, cfg.batch_window_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        yield
        await batcher.stop()
        reward_fn.close()  # its grading worker processes

    app = FastAPI(title="tdrm reward server", lifespan=lifespan)
    app.state.batcher = batcher

    authorize = bearer_check(cfg.token)

    def items_of(body: RewardRequest) -> list[RewardItem]:
        n = len(body.query)
        if n > cfg.max_items:
            raise HTTPException(413, f"{n} queries in one request; the limit is {cfg.max_items}")
        for name in ("prompts", "labels"):
            given = getattr(body, name)
            if given is not None and len(given) != n:
                raise HTTPException(422, f"{name} has {len(given)} entries for {n} queries")
        prompts = body.prompts or [None] * n
        labels = body.labels or [None] * n
        return [
            RewardItem(
                question_from_prompt(p or "", cfg.prompt_template),
                response_of(q, p),
                None if label is None else str(label),
            )
            for q, p, label in zip(body.query, prompts, labels, strict=True)
        ]

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "mode": reward_fn.config.mode,
            "prm": type(reward_fn.prm).__name__ if reward_fn.prm else None,
            "batches": batcher.batches,
        }

    @app.post("/get_reward", dependencies=[Depends(authorize)])
    async def get_reward(body: RewardRequest) -> dict[str, Any]:
        outs = await batcher.score(items_of(body))
        rewards = [cfg.neutral if o.reward is None else o.reward for o in outs]
        return {
            "rewards": rewards,
            "scores": [cfg.neutral if o.rule is None else o.rule for o in outs],
            "extra_logs": {
                "rule": [cfg.neutral if o.rule is None else o.rule for o in outs],
                "prm": [-1.0 if o.prm is None else o.prm for o in outs],
                "abstain": [float(o.reward is None) for o in outs],
            },
        }

    @app.post("/score", dependencies=[Depends(authorize)])
    async def score(body: RewardRequest) -> dict[str, Any]:
        return {"results": [o.to_dict() for o in await batcher.score(items_of(body))]}

    return BodyLimit(app, cfg.max_body_bytes)
