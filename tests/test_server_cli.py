"""The command line (`tdrm search/bench/demo --policy URL`) and `tdrm serve` (search as a service, answering the
official openai client and lm-evaluation-harness) through a real vLLM OpenAI-compatible server of the lab policy
(tests/lab_server.py, shared with test_server_policy.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
from lab_server import KEY, policy_fixture, problems_fixture, server_fixture  # noqa: F401 (fixtures)

from tdrm_search.vllm_server import free_port

pytestmark = pytest.mark.vllm


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
