"""The policy and PRMs through a real vLLM OpenAI-compatible server, and `tdrm serve` (search as a service).

One server per module: the lab policy on 127.0.0.1, started with --api-key (every request must carry it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tdrm_search.config import METHODS
from tdrm_search.engine import search_batch
from tdrm_search.loading import LAB_POLICY
from tdrm_search.policies.base import SampleRequest
from tdrm_search.prms.base import ScoreRequest
from tdrm_search.prms.config import PRMConfig
from tdrm_search.prms.oracle import OraclePRM
from tdrm_search.remote_client import RemoteRequestError
from tdrm_search.tasks.lab import generate_problems
from tdrm_search.vllm_server import free_port, start_vllm_server

pytestmark = pytest.mark.vllm
KEY = "test-key-30"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    server = start_vllm_server(LAB_POLICY, name="lab", api_key=KEY, log=log)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def policy(server):
    from tdrm_search.policies.remote import OpenAIPolicy

    policy = OpenAIPolicy(server.url, api_key=KEY)
    yield policy
    policy.close()


@pytest.fixture(scope="module")
def problems():
    return generate_problems(3, seed=11)


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


def cli(*args, env=None, **kwargs):
    environment = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "tdrm_search.cli", *args], env=environment, text=True, **kwargs)


def test_cli_wrong_model_is_one_line(server):
    out = cli(
        "search", "What is 2+3?", "--policy", f"{server.url}?model=nope", "--prm", "none",
        env={"TDRM_API_KEY": KEY}, capture_output=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "no model named 'nope'" in out.stderr


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


def test_bench_killed_and_resumed_loses_and_duplicates_nothing(server, tmp_path):
    out = tmp_path / "records.jsonl"
    args = ["bench", "-d", "lab", "--limit", "12", "-m", "best_of_n", "-n", "4", "--batch-size", "2"]
    args += ["--policy", server.url, "--prm", "oracle", "--out", str(out), "--no-progress"]
    env = {"TDRM_API_KEY": KEY}
    first = subprocess.Popen(
        [sys.executable, "-m", "tdrm_search.cli", *args],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not out.exists() or len(out.read_text().splitlines()) < 2):
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    done_before = len(out.read_text().splitlines())
    assert 2 <= done_before < 12
    assert cli(*args, env=env, capture_output=True, timeout=300).returncode == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    ids = [r["id"] for r in records]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 12


@pytest.fixture(scope="module")
def service(policy):
    import uvicorn

    from tdrm_search.config import SearchConfig
    from tdrm_search.service import ServeConfig, create_app

    defaults = SearchConfig.make("best_of_n", 4, 0)
    from tdrm_search.prms.constant import ConstantPRM

    app = create_app(policy, ConstantPRM(), defaults, ServeConfig(token="serve-key", batch_window_s=0.3))
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    while not uv.started:
        time.sleep(0.05)
    yield app, f"http://127.0.0.1:{port}/v1"
    uv.should_exit = True
    thread.join(10)


def test_serve_answers_the_openai_client_batched(service, problems):
    import openai

    app, url = service
    client = openai.OpenAI(base_url=url, api_key="serve-key")
    assert [m.id for m in client.models.list()] == ["tdrm-search"]
    answers = [None] * len(problems)

    def ask(i):
        out = client.completions.create(model="tdrm-search", prompt=problems[i].question, max_tokens=64)
        answers[i] = out

    before = len(app.state.batcher.batches)
    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(problems))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert app.state.batcher.batches[before:] == [len(problems)]  # arrived together: one search_batch
    for out in answers:
        choice = out.choices[0]
        assert choice.text and choice.model_extra["search"]["candidates"] == 4
        assert out.usage.completion_tokens == choice.model_extra["search"]["stats"]["generated_tokens"] > 0
    chat = client.chat.completions.create(
        model="tdrm-search",
        messages=[{"role": "user", "content": problems[0].question}],
        extra_body={"search": {"method": "beam", "n": 4}},
    )
    assert chat.choices[0].message.content and chat.choices[0].model_extra["search"]["method"] == "beam"


def test_serve_refuses_bad_input(service):
    _, url = service
    auth = {"Authorization": "Bearer serve-key"}
    assert httpx.post(f"{url}/completions", json={"prompt": "2+3?"}).status_code == 401
    r = httpx.post(f"{url}/completions", json={"prompt": "2+3?", "search": {"method": "nope"}}, headers=auth)
    assert r.status_code == 400 and "unknown method" in r.json()["detail"]
    r = httpx.post(f"{url}/completions", json={"prompt": "2+3?", "search": {"bogus": 1}}, headers=auth)
    assert r.status_code == 400 and "bogus" in r.json()["detail"]
    assert httpx.post(f"{url}/completions", json={"promt": "x"}, headers=auth).status_code == 422
    assert httpx.post(f"{url}/completions", json={"prompt": " "}, headers=auth).status_code == 400
    r = httpx.post(f"{url}/chat/completions", json={"messages": [{"role": "system", "content": "x"}]}, headers=auth)
    assert r.status_code == 400


def test_search_command_through_the_server(server):
    out = cli(
        "search", "Sam has 2 coins. On day 1 he finds 3. How many coins after day 1?", "--policy", server.url,
        "--prm", "none", "--method", "beam", "-n", "4", "--json",
        env={"TDRM_API_KEY": KEY}, capture_output=True, timeout=180,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["stats"]["generated_tokens"] > 0


def test_serve_answers_lm_eval_local_completions(service, problems):
    """lm-evaluation-harness's `local-completions` model type, with concurrent requests, gets the searched answers."""
    pytest.importorskip("lm_eval")
    from lm_eval.api.instance import Instance
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    app, url = service
    lm = LocalCompletionsAPI(
        base_url=f"{url}/completions",
        model="tdrm-search",
        tokenizer_backend=None,
        tokenized_requests=False,
        num_concurrent=len(problems),
        header={"Authorization": "Bearer serve-key"},
    )
    requests = [
        Instance("generate_until", {}, (p.question, {"until": ["<|im_end|>"], "max_gen_toks": 64}), idx=i)
        for i, p in enumerate(problems)
    ]
    before = len(app.state.batcher.batches)
    texts = lm.generate_until(requests, disable_tqdm=True)
    assert len(texts) == len(problems) and all(texts)
    assert sum(app.state.batcher.batches[before:]) == len(problems) and len(app.state.batcher.batches) - before < 3


def test_demo_through_the_server(server, tmp_path):
    """`tdrm demo --policy URL`: greedy and every search method, the shipped lab PRM in-process."""
    out = cli(
        "demo", "--problems", "2", "--budgets", "4", "--methods", "best_of_n", "beam", "dvts", "mcts",
        "particle_filter", "--policy", server.url, "--out", str(tmp_path),
        env={"TDRM_API_KEY": KEY}, capture_output=True, timeout=240,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert {r["method"] for r in records} == {"greedy", "best_of_n", "beam", "dvts", "mcts", "particle_filter"}
