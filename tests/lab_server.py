"""One vLLM OpenAI-compatible server of the lab policy for every test module that needs one (test_server_policy,
test_server_cli): started by the first module that asks, stopped when the test process exits, so the two modules
pay its ~40 s start once; the fixtures both modules import (server, policy, problems)."""

from __future__ import annotations

import atexit
import tempfile
from pathlib import Path

import pytest

from tdrm_search.loading import LAB_POLICY
from tdrm_search.tasks.lab import generate_problems
from tdrm_search.vllm_server import VLLMServer, start_vllm_server

KEY = "test-key-30"  # the server runs with --api-key: every request must carry it
_SERVERS: dict[str, VLLMServer] = {}


def lab_server() -> VLLMServer:
    """The lab policy served on 127.0.0.1 as "lab", with --api-key KEY; its log in a temporary folder."""
    if "lab" not in _SERVERS:
        log = Path(tempfile.mkdtemp(prefix="tdrm-vllm-server-")) / "server.log"
        server = start_vllm_server(LAB_POLICY, name="lab", api_key=KEY, log=log)
        atexit.register(server.stop)
        _SERVERS["lab"] = server
    return _SERVERS["lab"]


@pytest.fixture(scope="module", name="server")
def server_fixture() -> VLLMServer:
    return lab_server()


@pytest.fixture(scope="module", name="policy")
def policy_fixture(server):
    """An OpenAIPolicy on the lab server, with the key."""
    from tdrm_search.policies.remote import OpenAIPolicy

    policy = OpenAIPolicy(server.url, api_key=KEY)
    yield policy
    policy.close()


@pytest.fixture(scope="module", name="problems")
def problems_fixture():
    return generate_problems(3, seed=11)
