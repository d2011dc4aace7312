"""The policy and PRMs through a real vLLM OpenAI-compatible server: every method, in-process answers at temperature
0, a beam round's requests grouped by parent, seeds, retries, errors, remote PRM values. The command line and
`tdrm serve` through the same server: test_server_cli.py.

The lab policy on 127.0.0.1 (tests/lab_server.py, shared with test_server_cli), started with --api-key (every
request must carry it)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from lab_server import KEY, policy_fixture, problems_fixture, server_fixture  # noqa: F401 (fixtures)

from tdrm_search.config import METHODS, SearchConfig
from tdrm_search.engine import schedule_for, search_batch
from tdrm_search.loading import LAB_POLICY
from tdrm_search.policies.base import SampleRequest
from tdrm_search.prms.base import ScoreRequest
from tdrm_search.prms.config import PRMConfig
from tdrm_search.prms.oracle import OraclePRM
from tdrm_search.remote_client import RemoteRequestError

pytestmark = pytest.mark.vllm


def test_every_method_runs_through_the_server(policy, problems):
    for method in METHODS:
        results = search_batch(problems[:2], policy, OraclePRM(), method=method, n=4, seed=0, temperature=1.0)
        for r in results:
            assert r.candidates or method == "mcts", method
            assert r.stats["generated_tokens"] > 0 and r.stats["prompt_tokens"] > 0, method
    assert policy.model == "lab"  # read from /v1/models


def test_greedy_search_matches_in_process(policy, problems, vllm_lab_policy):
    """At temperature 0 the server and the in-process engine expand the same trees."""
    options = dict(method="beam", n=4, seed=0, temperature=0.0)
    remote = search_batch(problems, policy, OraclePRM(), **options)
    local = search_batch(problems, vllm_lab_policy, OraclePRM(), **options)
    for a, b in zip(remote, local, strict=True):
        assert a.answer == b.answer
        assert a.best.steps == b.best.steps
        assert a.stats["generated_tokens"] == b.stats["generated_tokens"]
    assert sum(r.stats["cached_prompt_tokens"] for r in remote) > 0  # the server's own usage reports cache hits


def test_async_schedule_returns_the_lockstep_search(policy, problems):
    """Per-request seeds come from the problem and its own round, so each problem advancing on its own draws the
    samples the lockstep rounds draw: the same trees, at temperature 1."""
    for method in ("best_of_n", "beam", "mcts"):
        runs = [
            search_batch(problems, policy, OraclePRM(), method=method, n=4, seed=3, temperature=1.0, schedule=s)
            for s in ("lockstep", "async")
        ]
        for a, b in zip(*runs, strict=True):
            assert [c.steps for c in a.candidates] == [c.steps for c in b.candidates], method
            assert a.stats["generated_tokens"] == b.stats["generated_tokens"], method


def test_the_default_schedule_is_async_for_a_server_policy_and_lockstep_in_process(policy, vllm_lab_policy):
    """`auto` (the default) runs a server policy asynchronously (faster with the server on cores of its own:
    benchmarks/results/server_search_server_core.json) and an in-process engine in lockstep rounds."""
    assert SearchConfig.make("beam", 4, 0).schedule == "auto"
    assert schedule_for("auto", policy) == "async" and schedule_for("auto", vllm_lab_policy) == "lockstep"
    assert schedule_for("lockstep", policy) == "lockstep" and schedule_for("async", vllm_lab_policy) == "async"


def test_seeded_samples_are_reproducible(policy, problems):
    prompt = tuple(policy.encode_prompt(problems[0].question))
    request = SampleRequest(prompt, n=3, max_tokens=24, temperature=1.0, stop="\n\n", seed=1234)
    a = policy.generate([request], seed=0).samples[0]
    b = policy.generate([request, request], seed=5).samples[1]
    assert [s.token_ids for s in a] == [s.token_ids for s in b]
    assert all(policy.decode(s.token_ids) == s.text for s in a)


class FlakyProxy(BaseHTTPRequestHandler):
    """Forwards to the server; answers the first `fail` POSTs with 503."""

    target = ""
    fail = 0
    seen = 0

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen += 1
        if type(self).fail > 0:
            type(self).fail -= 1
            self.reply(503, b'{"error": {"message": "injected"}}')
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
        r = httpx.post(self.target + self.path, content=body, headers=headers, timeout=60)
        self.reply(r.status_code, r.content)

    def do_GET(self):  # noqa: N802
        headers = {k: v for k, v in self.headers.items() if k.lower() == "authorization"}
        r = httpx.get(self.target + self.path, headers=headers, timeout=60)
        self.reply(r.status_code, r.content)

    def reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_5xx_is_retried(server, problems):
    from tdrm_search.policies.remote import OpenAIPolicy

    FlakyProxy.target = server.url.removesuffix("/v1")
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), FlakyProxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        policy = OpenAIPolicy(f"http://127.0.0.1:{proxy.server_port}/v1", api_key=KEY, backoff_s=0.01)
        FlakyProxy.fail = 3
        prompt = tuple(policy.encode_prompt(problems[0].question))
        out = policy.generate([SampleRequest(prompt, n=2, max_tokens=8, temperature=1.0, seed=1)], seed=0)
        assert len(out.samples[0]) == 2 and policy.client.retried == 3
        policy.close()
    finally:
        proxy.shutdown()


def test_4xx_is_one_line_naming_the_request(server, policy):
    from tdrm_search.policies.remote import OpenAIPolicy

    with pytest.raises(RemoteRequestError, match="no model named 'nope'") as err:
        OpenAIPolicy(server.url, model="nope", api_key=KEY)
    assert "\n" not in str(err.value)
    with pytest.raises(RemoteRequestError, match="HTTP 401") as err:
        OpenAIPolicy(server.url)  # no key: the server refuses
    long = SampleRequest(tuple([5] * (policy.max_model_len + 10)), n=1, max_tokens=4, temperature=1.0)
    with pytest.raises(RemoteRequestError, match=r"completion request 0 of 1 \(\d+ prompt tokens") as err:
        policy.generate([long], seed=0)
    assert "\n" not in str(err.value)


def test_remote_prm_values_match_in_process(server, problems):
    """The likelihood and LM heads read through the server equal the transformers PRM on the same model."""
    from tdrm_search.prms.hf import HFPRM
    from tdrm_search.prms.remote import RemotePRM

    steps = ("Day 1: 2 + 3 = 5", "Day 2: 5 * 2 = 10", "Day 3: 10 - 1 = 9")
    requests = [ScoreRequest(problems[0], steps), ScoreRequest(problems[1], steps[:2], start=1)]
    likelihood = PRMConfig(head="likelihood", step_join="\n\n", scale=0.5, bias=1.0)
    lm = PRMConfig(head="lm", step_tag="\n\n", good_token="1", bad_token="0", step_join="")
    for config in (likelihood, lm):
        remote = RemotePRM(server.url, api_key=KEY, config=config).score(requests)
        local = HFPRM(LAB_POLICY, config=config).score(requests)
        for a, b in zip(remote.scores, local.scores, strict=True):
            assert a == pytest.approx(b, abs=1e-4), config.head
        assert remote.tokens[0] > 0


def test_a_beam_round_sends_one_request_per_parent(policy, problems, vllm_lab_policy):
    """A node's children share its prompt: they go as one completions request with n = k (vLLM seeds child k with
    seed + k, the in-process per-sample seeds), so a beam round sends one HTTP request per expanded node, far fewer
    than its children; greedy beam search still expands the trees the in-process engine does."""
    calls = []
    generate = policy.agenerate

    async def counting(requests, seed):
        calls.append(requests)
        return await generate(requests, seed)

    policy.agenerate = counting
    try:
        sent = policy.client.requests
        search_batch(problems, policy, OraclePRM(), method="beam", n=16, seed=0, temperature=1.0)
        http = policy.client.requests - sent
    finally:
        del policy.agenerate
    parents = sum(len(requests) for requests in calls)
    children = sum(r.n for requests in calls for r in requests)
    assert http == parents and children >= 3 * http, (http, parents, children)
    options = dict(method="beam", n=16, seed=0, temperature=0.0)
    remote = search_batch(problems, policy, OraclePRM(), **options)
    local = search_batch(problems, vllm_lab_policy, OraclePRM(), **options)
    assert [r.best.steps for r in remote] == [r.best.steps for r in local]
    assert [r.stats["generated_tokens"] for r in remote] == [r.stats["generated_tokens"] for r in local]
