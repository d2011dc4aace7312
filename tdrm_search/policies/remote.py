"""A policy served behind an OpenAI-compatible completions endpoint (`vllm serve`, SGLang): `--policy
http://HOST:PORT/v1`.

Prompts go as token ids (the completions API takes a list of ints; vLLM and SGLang accept it), so the server's
prefix cache serves shared prefixes exactly as the in-process engine's does; generated token ids come back with
vLLM's `return_token_ids`, so children continue from the exact ids, never re-tokenised text. A request's n samples
go as one HTTP request (vLLM seeds sample k with seed + k: the per-sample seeds the in-process vLLM policy gives,
`sample_seeds`); the counters are the server's usage, which counts a request's prompt once for its n samples
(in-process: once per sample) and its cached prompt tokens as vLLM reports them (`--enable-prompt-tokens-details`).
Greedy requests run once and are copied. The tokenizer (to build prompts and split steps) loads locally from the
model's path that /v1/models reports (`root`), unless one is given.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from pathlib import Path
from typing import Any

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
    `client_options` (max_concurrency, timeout_s, retries, backoff_s) go to `RemoteClient`; `seed_requests=False`
    sends no per-request seeds (for a server whose sampler cannot seed a request: then nothing is reproducible);
    `split_samples=True` sends each sample as its own request (usage then counts every sample's prompt, as
    in-process; slower)."""

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        api_key: str | None = None,
        *,
        tokenizer=None,
        prompt_template: str | None = None,
        seed_requests: bool = True,
        split_samples: bool = False,
        max_model_len: int | None = None,
        **client_options: Any,
    ):
        self.client = RemoteClient(base_url, api_key, **client_options)
        entry = served_model(self.client, model)
        self.model = entry["id"]
        self.where = f"remote policy {self.client.base_url} ({self.model})"
        self.tokenizer = load_tokenizer(tokenizer, entry.get("root"), self.where)
        self.prompt_template = prompt_template
        self.seed_requests, self.split_samples = seed_requests, split_samples
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

    def body(self, request: SampleRequest, n: int, seed: int | None) -> dict:
        body = {
            "model": self.model,
            "prompt": list(request.prefix),
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "n": n,
            "return_token_ids": True,
            "include_stop_str_in_output": True,
            "skip_special_tokens": True,
        }
        if request.stop:
            body["stop"] = [request.stop]
        if seed is not None and self.seed_requests:
            body["seed"] = seed
        return body

    async def sample(self, request: SampleRequest, n: int, seed: int | None, what: str):
        """`n` samples of one request in one HTTP request: the samples, and the prompt and cached prompt tokens of
        the server's usage."""
        data = await self.client.post("/completions", self.body(request, n, seed), what)
        samples = []
        for choice in sorted(data["choices"], key=lambda c: c.get("index", 0)):
            ids = choice.get("token_ids")
            if ids is None:
                raise ValueError(
                    f"{self.where}: the server returned no token ids (vLLM's return_token_ids); tdrm needs them so "
                    "children continue from the exact ids"
                )
            samples.append(Sample(list(ids), choice.get("text", ""), finish_of(choice)))
        usage = data.get("usage") or {}
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
        return samples, usage.get("prompt_tokens", 0), cached

    async def agenerate(self, requests: list[SampleRequest], seed: int) -> GenerateOutput:
        """`generate` on the client's event loop, every HTTP request in flight at once (bounded by the client).

        One HTTP request per request with `n` samples (vLLM seeds its k-th sample with seed + k, which are the
        per-sample seeds `VLLMPolicy` gives); with `split_samples`, one per sample (n=1, the same seeds), so the
        server's usage counts each sample's prompt as the in-process engine's counters do. Greedy requests run once
        and are copied."""
        calls = []  # (request index, samples in this HTTP request, seed)
        for i, r in enumerate(requests):
            count = 1 if r.temperature == 0 else r.n
            first = sample_seeds(r.seed if r.seed is not None else seed * 1_000_003 + i, 1)[0]
            first -= 2**62 if first + count >= 2**63 else 0  # the server takes int64 seeds: first + k must fit
            if self.split_samples:
                calls += [(i, 1, first + k) for k in range(count)]
            else:
                calls.append((i, count, first))
        results = await asyncio.gather(
            *(
                self.sample(
                    requests[i],
                    n,
                    s,
                    f"completion request {i} of {len(requests)} ({len(requests[i].prefix)} prompt tokens, "
                    f"max_tokens {requests[i].max_tokens})",
                )
                for i, n, s in calls
            )
        )
        samples: list[list[Sample]] = [[] for _ in requests]
        prompt, cached = [0] * len(requests), [0] * len(requests)
        for (i, _, _), (new, p, c) in zip(calls, results, strict=True):
            samples[i] += new
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
