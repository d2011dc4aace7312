"""Search as a service (`tdrm serve`): an OpenAI-compatible server whose completion is the searched solution.

POST /v1/completions       {"prompt": "question" | ["q1", "q2", ...], ...}
POST /v1/chat/completions  {"messages": [..., {"role": "user", "content": "question"}], ...}
    Each prompt (or the last user message) is a question; the answer is the solution the search chose, as text.
    Search options ride in an extra body field, `"search": {"method": "mcts", "n": 16, "temperature": 0.7, ...}`
    (openai client: `extra_body={"search": {...}}`); fields not given come from the server's flags. `seed` (the
    OpenAI field) seeds the search. Sampling fields of the OpenAI API (max_tokens, temperature, stop, ...) are
    accepted and ignored: the search's own options govern sampling. The response carries, beside the OpenAI
    fields, `search` per choice (answer, score, method, the search's counters). usage.completion_tokens counts
    every token the search generated, not just the returned solution's; prompt_tokens every prompt token the
    policy took in.
GET /v1/models, GET /health.

Requests that arrive together (within `batch_window_s`) with the same search options are searched together, one
`search_batch`, one at a time on a worker thread. Bearer token when `token` is set; 127.0.0.1 by default. Bad
input is a 4xx with a one-line `detail`: 401 wrong or missing token, 413 too many prompts or too long a body,
422 a malformed body, 400 a search option or question the engine refuses.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from tdrm_search.bearer import bearer_check
from tdrm_search.config import PER_RUN, SearchConfig
from tdrm_search.types import Problem, SearchResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeConfig:
    model_name: str = "tdrm-search"
    token: str | None = None
    max_prompts: int = 256  # prompts in one request
    max_question_chars: int = 20_000
    max_body_bytes: int = 8 * 1024 * 1024
    batch_window_s: float = 0.05  # how long the batcher waits for more requests
    max_batch: int = 256  # questions in one search_batch


class CompletionBody(BaseModel):
    model_config = ConfigDict(extra="allow")  # the OpenAI sampling fields, accepted and ignored

    model: str | None = None
    prompt: str | list[str] = Field(min_length=1)
    seed: int | None = None
    search: dict[str, Any] | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    messages: list[Message] = Field(min_length=1)
    seed: int | None = None
    search: dict[str, Any] | None = None


def question_of(messages: list[Message]) -> str:
    """The last user message's text (text parts of a content list joined)."""
    for message in reversed(messages):
        if message.role == "user":
            content = message.content
            if isinstance(content, list):
                content = "".join(part.get("text", "") for part in content if part.get("type") == "text")
            if content and content.strip():
                return content
    raise HTTPException(400, "no user message with text: the question is the last user message")


class SearchBatcher:
    """Gathers questions of concurrent requests for up to `window_s` and searches those with the same options in
    one `search_batch` on a worker thread; one batch at a time (the engines are not thread-safe)."""

    def __init__(self, policy, prm, window_s: float, max_batch: int):
        self.policy, self.prm, self.window_s, self.max_batch = policy, prm, window_s, max_batch
        self.queue: asyncio.Queue = asyncio.Queue()
        self.task: asyncio.Task | None = None
        self.batches: list[int] = []  # questions per search_batch run so far

    def start(self) -> None:
        self.task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def search(self, problems: list[Problem], run: dict) -> list[SearchResult]:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((problems, run, future))
        return await future

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            pending = [await self.queue.get()]
            deadline = loop.time() + self.window_s
            while sum(len(p[0]) for p in pending) < self.max_batch:
                try:
                    pending.append(await asyncio.wait_for(self.queue.get(), deadline - loop.time()))
                except TimeoutError:
                    break
            groups: dict[str, list] = {}
            for item in pending:
                groups.setdefault(repr(sorted(item[1].items())), []).append(item)
            for group in groups.values():
                await self.flush(group)

    async def flush(self, group: list) -> None:
        from tdrm_search.engine import search_batch

        problems = [p for chunk, _, _ in group for p in chunk]
        run = group[0][1]
        try:
            results = await asyncio.to_thread(search_batch, problems, self.policy, self.prm, **run)
        except Exception as err:  # fail these requests, not the batcher
            if not isinstance(err, ValueError):  # a ValueError is bad input: the requests get a 400
                log.exception("searching a batch of %d failed", len(problems))
            for _, _, future in group:
                if not future.done():
                    future.set_exception(err)
            return
        self.batches.append(len(problems))
        start = 0
        for chunk, _, future in group:
            if not future.done():
                future.set_result(results[start : start + len(chunk)])
            start += len(chunk)


def search_run(defaults: SearchConfig, options: dict | None, seed: int | None) -> dict:
    """search_batch's keyword arguments: the server's defaults with the request's `search` options over them; a
    400 naming a bad option."""
    given = dict(options or {})
    if seed is not None:
        given.setdefault("seed", seed)
    base = {f.name: getattr(defaults, f.name) for f in dataclasses.fields(SearchConfig)}
    run = {**base, **given}
    try:
        SearchConfig.make(**{k: run.pop(k) for k in PER_RUN}, **run)
    except (TypeError, ValueError) as err:
        raise HTTPException(400, f"search options: {err}") from None
    return {**base, **given}


def choice_of(index: int, result: SearchResult, chat: bool) -> dict:
    text = result.best.text if result.best else ""
    extra = {
        "search": {
            "answer": result.answer,
            "score": result.best.score if result.best else None,
            "method": result.method,
            "candidates": len(result.candidates),
            "stats": result.stats,
        }
    }
    finish = "stop" if result.best and result.best.finish != "length" else "length"
    if chat:
        return {"index": index, "message": {"role": "assistant", "content": text}, "finish_reason": finish, **extra}
    return {"index": index, "text": text, "logprobs": None, "finish_reason": finish, **extra}


def usage_of(results: list[SearchResult]) -> dict:
    prompt = sum(r.stats.get("prompt_tokens", 0) for r in results)
    generated = sum(r.stats.get("generated_tokens", 0) for r in results)
    return {"prompt_tokens": prompt, "completion_tokens": generated, "total_tokens": prompt + generated}


def create_app(policy, prm, defaults: SearchConfig, config: ServeConfig | None = None) -> FastAPI:
    """The ASGI app; serve it with uvicorn, bound to 127.0.0.1 unless you mean to expose it."""
    cfg = config or ServeConfig()
    batcher = SearchBatcher(policy, prm, cfg.batch_window_s, cfg.max_batch)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="tdrm search server", lifespan=lifespan)
    app.state.batcher = batcher

    @app.middleware("http")
    async def body_limit(request: Request, call_next):
        length = request.headers.get("content-length", "0")
        if not length.isdigit():
            return JSONResponse({"detail": "malformed Content-Length header"}, 400)
        if int(length) > cfg.max_body_bytes:
            return JSONResponse({"detail": f"request body over {cfg.max_body_bytes} bytes"}, 413)
        return await call_next(request)

    authorize = bearer_check(cfg.token)

    def problems_of(questions: list[str]) -> list[Problem]:
        if len(questions) > cfg.max_prompts:
            raise HTTPException(413, f"{len(questions)} prompts in one request; the limit is {cfg.max_prompts}")
        for k, q in enumerate(questions):
            if not q.strip():
                raise HTTPException(400, f"prompt {k} is empty")
            if len(q) > cfg.max_question_chars:
                raise HTTPException(413, f"prompt {k} is {len(q)} characters; the limit is {cfg.max_question_chars}")
        return [Problem(question=q) for q in questions]

    async def searched(problems: list[Problem], run: dict) -> list[SearchResult]:
        try:
            return await batcher.search(problems, run)
        except ValueError as err:  # the engine refused the input (a prompt longer than the context, ...)
            raise HTTPException(400, str(err).splitlines()[0]) from None

    def response(kind: str, results: list[SearchResult], chat: bool) -> dict:
        return {
            "id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}",
            "object": kind,
            "created": int(time.time()),
            "model": cfg.model_name,
            "choices": [choice_of(i, r, chat) for i, r in enumerate(results)],
            "usage": usage_of(results),
        }

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "batches": len(batcher.batches), "method": defaults.method, "n": defaults.n}

    @app.get("/v1/models", dependencies=[Depends(authorize)])
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": cfg.model_name, "object": "model", "owned_by": "tdrm"}]}

    @app.post("/v1/completions", dependencies=[Depends(authorize)])
    async def completions(body: CompletionBody) -> dict[str, Any]:
        questions = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        problems = problems_of(questions)
        results = await searched(problems, search_run(defaults, body.search, body.seed))
        return response("text_completion", results, chat=False)

    @app.post("/v1/chat/completions", dependencies=[Depends(authorize)])
    async def chat_completions(body: ChatBody) -> dict[str, Any]:
        problems = problems_of([question_of(body.messages)])
        results = await searched(problems, search_run(defaults, body.search, body.seed))
        return response("chat.completion", results, chat=True)

    return app
