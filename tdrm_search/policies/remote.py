"""A policy served behind an OpenAI-compatible completions endpoint (`vllm serve`, SGLang): `--policy
http://HOST:PORT/v1`.

Prompts go as token ids (the completions API takes a list of ints; vLLM and SGLang accept it), so the server's
prefix cache serves shared prefixes exactly as the in-process engine's does; generated token ids come back with
vLLM's `return_token_ids`, so children continue from the exact ids, never re-tokenised text. Each of a request's n
samples is its own HTTP request with the seed the in-process vLLM policy would give it (`sample_seeds`), so
prompt and cached-prompt counts are the server's own usage per sample, as in-process. Greedy requests run once and
are copied. The tokenizer (to build prompts and split steps) loads locally from the model's path that /v1/models
reports (`root`), unless one is given.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from pathlib import Path

from tdrm_search.policies.base import GenerateOutput, Sample, SampleRequest
from tdrm_search.policies.prompt import encode_question
from tdrm_search.remote_client import RemoteClient, served_model


def sample_seeds(seed: int, count: int) -> list[int]:
    """The per-sample seeds of `VLLMPolicy` (policies/vllm.py): the same request draws the same samples there and
    here, where the server honours seeds."""
    return [(seed * 2_654_435_761 + k) % 2**63 for k in range(count)]


def load_tokenizer(tokenizer, root: str | None, where: str):
    """A tokenizer object, or one loaded from a path or hub id: `tokenizer`, else the server's model path."""
    if tokenizer is not None and not isinstance(tokenizer, (str, Path)):
        return tokenizer
    name = tokenizer or root
    if not name:
        raise ValueError(f"{where}: the server reports no model path; pass tokenizer=")
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(name))
    except (OSError, ValueError) as err:
        raise ValueError(
            f"{where}: cannot load the tokenizer {str(name)!r} here ({type(err).__name__}); pass tokenizer= "
            "naming a local copy of the served model's tokenizer"
        ) from None


def finish_of(choice: dict) -> str:
    if choice.get("finish_reason") == "length":
        return "length"
    return "stop" if isinstance(choice.get("stop_reason"), str) else "eos"


class OpenAIPolicy:
    """The policy a server serves. `model` defaults to the one /v1/models lists; `api_key` goes as a Bearer token;
    at most `max_concurrency` requests are in flight; `seed_requests=False` sends no per-request seeds (for a server
    whose sampler cannot seed a request: then nothing is reproducible); `timeout_s`, `retries` and `backoff_s` as
    in `RemoteClient`."""

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        api_key: str | None = None,
        *,
        tokenizer=None,
        prompt_template: str | None = None,
        max_concurrency: int = 256,
        timeout_s: float = 600.0,
        retries: int = 5,
        backoff_s: float = 0.5,
        seed_requests: bool = True,
        max_model_len: int | None = None,
    ):
        self.client = RemoteClient(
            base_url,
            api_key,
            max_concurrency=max_concurrency,
            timeout_s=timeout_s,
            retries=retries,
            backoff_s=backoff_s,
        )
        entry = served_model(self.client, model)
        self.model = entry["id"]
        self.where = f"remote policy {self.client.base_url} ({self.model})"
        self.tokenizer = load_tokenizer(tokenizer, entry.get("root"), self.where)
        self.prompt_template = prompt_template
        self.seed_requests = seed_requests
        self._max_len = max_model_len or entry.get("max_model_len") or getattr(self.tokenizer, "model_max_length", 0)
        if not self._max_len or self._max_len > 10**8:
            raise ValueError(f"{self.where}: the server reports no max_model_len; pass max_model_len=")
        self.per_request_seed = seed_requests

    @property
    def max_model_len(self) -> int:
        return int(self._max_len)

    def encode_prompt(self, question: str) -> list[int]:
        return encode_question(self.tokenizer, question, self.prompt_template)

    def decode(self, token_ids: list[int]) -> str:
        return self.tokenizer.decode(token_ids, skip_special_tokens=True)

    def body(self, request: SampleRequest, seed: int | None) -> dict:
        body = {
            "model": self.model,
            "prompt": list(request.prefix),
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "n": 1,
            "return_token_ids": True,
            "include_stop_str_in_output": True,
            "skip_special_tokens": True,
        }
        if request.stop:
            body["stop"] = [request.stop]
        if seed is not None and self.seed_requests:
            body["seed"] = seed
        return body

    async def sample(self, request: SampleRequest, seed: int | None, what: str) -> tuple[Sample, int, int]:
        """One sample: the sample, its prompt tokens and cached prompt tokens (the server's usage)."""
        data = await self.client.post("/completions", self.body(request, seed), what)
        choice = data["choices"][0]
        ids = choice.get("token_ids")
        if ids is None:
            raise ValueError(
                f"{self.where}: the server returned no token ids (vLLM's return_token_ids); tdrm needs them so "
                "children continue from the exact ids"
            )
        usage = data.get("usage") or {}
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
        return Sample(list(ids), choice.get("text", ""), finish_of(choice)), usage.get("prompt_tokens", 0), cached

    async def agenerate(self, requests: list[SampleRequest], seed: int) -> GenerateOutput:
        """`generate` on the client's event loop: every sample its own request, all in flight at once (bounded)."""
        owners = [i for i, r in enumerate(requests) for _ in range(1 if r.temperature == 0 else r.n)]
        own = {i: iter(sample_seeds(r.seed, r.n)) for i, r in enumerate(requests) if r.seed is not None}
        seeds = [next(own[i]) if i in own else s for i, s in zip(owners, sample_seeds(seed, len(owners)), strict=True)]
        tasks = [
            self.sample(
                requests[i],
                s,
                f"completion request {i} of {len(requests)} ({len(requests[i].prefix)} prompt tokens, "
                f"max_tokens {requests[i].max_tokens})",
            )
            for i, s in zip(owners, seeds, strict=True)
        ]
        results = await asyncio.gather(*tasks)
        samples: list[list[Sample]] = [[] for _ in requests]
        prompt, cached = [0] * len(requests), [0] * len(requests)
        for i, (sample, p, c) in zip(owners, results, strict=True):
            samples[i].append(sample)
            prompt[i] += p
            cached[i] += c
        samples = [s * r.n if len(s) < r.n else s for s, r in zip(samples, requests, strict=True)]
        return GenerateOutput(samples, prompt, cached)

    def submit(self, requests: list[SampleRequest], seed: int) -> Future:
        """`generate` without waiting: a future of its output (the async driver, `async_driver.py`)."""
        return asyncio.run_coroutine_threadsafe(self.agenerate(requests, seed), self.client.loop)

    def generate(self, requests: list[SampleRequest], seed: int) -> GenerateOutput:
        """All requests at once through the server; per-request seeds as `VLLMPolicy` on a GPU draws them."""
        return self.client.run(self.agenerate(requests, seed))

    def close(self) -> None:
        self.client.close()


API_KEY_ENV = "TDRM_API_KEY"


def split_spec(spec: str) -> tuple[str, str | None]:
    """`http://HOST:PORT/v1` or `http://HOST:PORT/v1?model=NAME` -> (base URL, model name or None)."""
    from urllib.parse import parse_qs, urlsplit, urlunsplit

    parts = urlsplit(spec)
    model = parse_qs(parts.query).get("model", [None])[0]
    return urlunsplit(parts._replace(query="")), model


def remote_policy(spec: str, api_key: str | None = None, **kwargs) -> OpenAIPolicy:
    """The command line's `--policy URL`: the API key from TDRM_API_KEY (never the command line)."""
    import os

    url, model = split_spec(spec)
    return OpenAIPolicy(url, model, api_key or os.environ.get(API_KEY_ENV) or None, **kwargs)
