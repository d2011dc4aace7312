"""The reward server: a real uvicorn server on 127.0.0.1 (free port), called the way OpenRLHF calls it
(a JSON POST of query/prompts/labels to /get_reward) by real HTTP clients, with a random-weight HF PRM."""

from __future__ import annotations

import asyncio
import threading
import time
from contextlib import contextmanager

import httpx
import pytest
import requests
import uvicorn

from rl_bridge.reward import RewardConfig, RewardFunction, RewardItem
from rl_bridge.server import ServerConfig, create_app
from tdrm_search.prms.hf import HFPRM
from tdrm_search.tasks.lab import generate_problems, reference_solution

TOKEN = "test-token"
TEMPLATE = "Q: {question}\nA:\n"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def reward_fn(random_prm_dir):
    return RewardFunction(RewardConfig(mode="clip_delta", eta=0.6), HFPRM(random_prm_dir))


@contextmanager
def serving(app):
    """uvicorn on 127.0.0.1, port chosen by the OS; yields its base URL."""
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not (srv.started and srv.servers):
        assert time.time() < deadline, "server did not start"
        time.sleep(0.05)
    host, port = srv.servers[0].sockets[0].getsockname()[:2]
    assert host == "127.0.0.1"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def server(reward_fn):
    config = ServerConfig(token=TOKEN, max_body_bytes=64_000, max_items=64, prompt_template=TEMPLATE)
    with serving(create_app(reward_fn, config)) as url:
        yield url


def openrlhf_batch(n: int, seed: int = 5):
    """What OpenRLHF posts: query = prompt + response as decoded text, labels = reference answers."""
    problems = generate_problems(n, seed=seed)
    prompts = [TEMPLATE.format(question=p.question) for p in problems]
    responses = [
        reference_solution(p) if i % 2 == 0 else "1 + 1 = 2\n\nThe answer is 2." for i, p in enumerate(problems)
    ]
    return (
        problems,
        {
            "query": [p + r for p, r in zip(prompts, responses, strict=True)],
            "prompts": prompts,
            "labels": [p.answer for p in problems],
        },
        responses,
    )


def test_health(server):
    body = httpx.get(f"{server}/health").json()
    assert body["status"] == "ok" and body["mode"] == "clip_delta" and body["prm"] == "HFPRM"


def test_get_reward_in_openrlhf_format_matches_the_reward_function(server, reward_fn):
    problems, payload, responses = openrlhf_batch(4)
    reply = httpx.post(f"{server}/get_reward", json=payload, headers=AUTH, timeout=30)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert set(body) == {"rewards", "scores", "extra_logs"}
    assert body["scores"] == [1.0, 0.0, 1.0, 0.0]
    direct = reward_fn.score([RewardItem(p.question, r, p.answer) for p, r in zip(problems, responses, strict=True)])
    assert body["rewards"] == pytest.approx([o.reward for o in direct])
    assert set(body["extra_logs"]) == {"rule", "prm", "abstain"}
    assert all(len(v) == 4 for v in body["extra_logs"].values())


def test_score_returns_per_step_rewards_at_step_ends(server):
    _, payload, responses = openrlhf_batch(2)
    results = httpx.post(f"{server}/score", json=payload, headers=AUTH, timeout=30).json()["results"]
    for result, response in zip(results, responses, strict=True):
        assert len(result["step_rewards"]) == len(result["char_ends"]) == response.count("\n\n") + 1
        assert result["char_ends"][-1] == len(response) - 1
        assert result["reward"] == pytest.approx(sum(result["step_rewards"]))


def test_concurrent_requests_are_batched_into_fewer_prm_calls(server):
    _, payload, _ = openrlhf_batch(2)
    before = httpx.get(f"{server}/health").json()["batches"]

    async def burst():
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(
                *[client.post(f"{server}/get_reward", json=payload, headers=AUTH) for _ in range(24)]
            )

    replies = asyncio.run(burst())
    assert all(r.status_code == 200 for r in replies)
    assert len({tuple(r.json()["rewards"]) for r in replies}) == 1
    batches = httpx.get(f"{server}/health").json()["batches"] - before
    assert 1 <= batches < 24


def test_missing_labels_give_the_neutral_reward_and_say_so(server):
    reply = httpx.post(f"{server}/get_reward", json={"query": ["Q: x\nA:\nThe answer is 3."]}, headers=AUTH)
    body = reply.json()
    assert reply.status_code == 200 and body["rewards"] == [0.0] and body["extra_logs"]["abstain"] == [1.0]


@pytest.mark.parametrize(
    "content, status, words",
    [
        (b"{not json", 422, "json"),
        (b'{"query": "one string"}', 422, "list"),
        (b'{"prompts": ["a"]}', 422, "query"),
        (b'{"query": []}', 422, "query"),
        (b'{"query": ["a", "b"], "labels": ["1"]}', 422, "labels has 1 entries for 2 queries"),
        (b'{"query": ["%s"]}' % (b"x" * 70_000), 413, "64000 bytes"),
        (b'{"query": [%s]}' % b",".join([b'"a"'] * 65), 413, "limit is 64"),
    ],
)
def test_bad_requests_get_4xx_with_a_message(server, content, status, words):
    reply = httpx.post(f"{server}/get_reward", content=content, headers=AUTH | {"Content-Type": "application/json"})
    assert reply.status_code == status
    assert words.lower() in reply.text.lower()


def test_oversized_streamed_body_without_length_is_refused(server):
    def chunks():
        yield b'{"query": ["'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"]}'

    reply = httpx.post(f"{server}/get_reward", content=chunks(), headers=AUTH | {"Content-Type": "application/json"})
    assert reply.status_code == 413


def test_bearer_token_is_required(server):
    _, payload, _ = openrlhf_batch(1)
    assert httpx.post(f"{server}/get_reward", json=payload).status_code == 401
    assert httpx.post(f"{server}/score", json=payload, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(f"{server}/health").status_code == 200


def test_openrlhf_client_code_path_without_token(reward_fn):
    """OpenRLHF's request_api_wrapper: requests.post(json=..., Content-Type header only), raise_for_status,
    then reads the "rewards" key; it sends no Authorization header, so it meets a token-less server."""
    _, payload, _ = openrlhf_batch(3)
    with serving(create_app(reward_fn, ServerConfig(prompt_template=TEMPLATE))) as url:
        response = requests.post(
            url=f"{url}/get_reward", json=payload, headers={"Content-Type": "application/json"}, timeout=(2, 60)
        )
        response.raise_for_status()
        body = response.json()
    assert "rewards" in body and len(body["rewards"]) == 3 and body["scores"] == [1.0, 0.0, 1.0]


def test_serve_reward_command_defaults_to_localhost():
    from tdrm_search.cli import build_parser

    args = build_parser().parse_args(["serve-reward", "--prm", "oracle", "--mode", "clip", "--eta", "0.7"])
    assert (args.host, args.mode, args.eta, args.prm) == ("127.0.0.1", "clip", 0.7, "oracle")
    assert args.func.__module__ == "rl_bridge.cli"
