"""Model names: "lab", a local folder, or a Hugging Face model id resolved through the Hugging Face cache.

The cache is laid out by the test as huggingface_hub writes it (HF_HOME/hub/models--org--name/snapshots/<rev>/ and
refs/main), holding the shipped lab models, and used offline (HF_HUB_OFFLINE=1): in-process through
huggingface_hub's constants, and through `tdrm search` in a subprocess on both backends."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tdrm_search.loading import LAB_POLICY, LAB_PRM, EngineSpec, load_policy, load_prm, resolve
from tdrm_search.prms.config import CONFIG_FILE, PRMConfig
from tdrm_search.tasks.lab import generate_problems

REPO = Path(__file__).resolve().parents[1]
MAIN = "0123456789abcdef0123456789abcdef01234567"  # the commit refs/main names
OTHER = "fedcba9876543210fedcba9876543210fedcba98"  # another commit, tagged v2
POLICY_ID, PRM_ID, BARE_ID = "tdrm-test/lab-policy", "tdrm-test/lab-prm", "tdrm-test/bare-prm"


def lay_out(hub: Path, repo_id: str, source: Path, commit: str, ref: str = "main", drop: tuple[str, ...] = ()) -> Path:
    """One snapshot of `repo_id` in the cache at `hub`, its files copied from `source`, `ref` pointing at it."""
    repo = hub / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    shutil.copytree(source, snapshot, ignore=shutil.ignore_patterns(*drop))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / ref).write_text(commit)
    return snapshot


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("hf_home")
    hub = home / "hub"
    lay_out(hub, POLICY_ID, LAB_POLICY, MAIN)
    lay_out(hub, PRM_ID, LAB_PRM, MAIN)
    lay_out(hub, PRM_ID, LAB_PRM, OTHER, ref="v2", drop=("eval.json",))
    lay_out(hub, BARE_ID, LAB_PRM, MAIN, drop=(CONFIG_FILE,))  # a hub PRM without tdrm_prm.json
    return home


@pytest.fixture
def offline(hf_home, monkeypatch) -> Path:
    """huggingface_hub reads HF_HOME and HF_HUB_OFFLINE when it is imported: set its constants for this process."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return hf_home / "hub"


def test_a_hub_id_resolves_to_its_cached_snapshot(offline):
    assert resolve(POLICY_ID, LAB_POLICY, "policy") == offline / f"models--tdrm-test--lab-policy/snapshots/{MAIN}"
    prm = offline / "models--tdrm-test--lab-prm/snapshots"
    assert resolve(PRM_ID, LAB_PRM, "PRM", revision="v2") == prm / OTHER  # a tag
    assert resolve(PRM_ID, LAB_PRM, "PRM", revision=MAIN) == prm / MAIN  # a commit


def test_lab_and_local_folders_come_first(offline, tmp_path, monkeypatch):
    assert resolve("lab", LAB_POLICY, "policy") == LAB_POLICY
    local = tmp_path / POLICY_ID  # a folder spelled like the hub id wins over the cache
    shutil.copytree(LAB_POLICY, local)
    monkeypatch.chdir(tmp_path)
    assert resolve(POLICY_ID, LAB_POLICY, "policy") == Path(POLICY_ID)
    with pytest.raises(ValueError, match="revision"):
        resolve("lab", LAB_POLICY, "policy", revision="v2")


@pytest.mark.parametrize(
    ("name", "revision", "expect"),
    [
        ("tdrm-test/missing", None, "neither a model folder nor in the Hugging Face cache"),
        (PRM_ID, "v9", "neither a model folder nor in the Hugging Face cache"),
        ("./no/such/folder", None, "not a Hugging Face model id"),
    ],
)
def test_an_unknown_name_is_one_line_naming_it(offline, name, revision, expect):
    with pytest.raises(FileNotFoundError) as info:
        load_policy(name, backend="hf", revision=revision)
    message = str(info.value)
    assert expect in message and repr(name) in message and "\n" not in message
    assert "HF_HUB_OFFLINE" in message or "model id" in message


def test_hub_prm_reads_its_config_from_the_snapshot(offline):
    from tdrm_search.prms.hf import HFPRM

    prm = load_prm(PRM_ID, backend="hf")
    assert isinstance(prm, HFPRM) and prm.config == PRMConfig.load(LAB_PRM)
    with pytest.raises(FileNotFoundError, match="--prm-config") as info:
        load_prm(BARE_ID, backend="hf")
    assert BARE_ID.replace("/", "--") in str(info.value)
    given = PRMConfig(head="likelihood", step_join="\n\n")
    assert load_prm(BARE_ID, backend="hf", config=given).config == given


def test_engine_spec_names_hub_models(offline, lab_problems):
    from tdrm_search.engine import search

    spec = EngineSpec(POLICY_ID, PRM_ID, backend="hf", prm_revision="v2")
    policy, prm = spec.load()
    result = search(lab_problems[0], policy, prm, method="best_of_n", n=2, seed=0)
    assert result.best is not None


def run_search(hf_home: Path, backend: str, *names: str) -> subprocess.CompletedProcess:
    """`tdrm search` in a fresh process whose huggingface_hub sees only the laid-out cache, offline."""
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    question = generate_problems(1, seed=7)[0].question
    command = [sys.executable, "-m", "tdrm_search", "search", question, "--method", "best_of_n", "-n", "2"]
    command += ["--backend", backend, "--prm-backend", backend, "--json", *names]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)


@pytest.mark.parametrize("backend", ["hf", "vllm"])
def test_search_command_offline_from_the_cache(hf_home, backend):
    done = run_search(hf_home, backend, "--policy", POLICY_ID, "--prm", PRM_ID)
    assert done.returncode == 0, done.stderr[-2000:]
    result = orjson.loads(done.stdout)
    assert result["candidates"] == 2 and result["best"]["step_scores"]


def test_search_command_names_an_uncached_model_in_one_line(hf_home):
    done = run_search(hf_home, "hf", "--policy", "tdrm-test/not-cached")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "'tdrm-test/not-cached'" in lines[0] and "neither a model folder nor in the Hugging Face cache" in lines[0]


def test_prm_train_starts_from_a_hub_backbone(offline, tmp_path):
    from test_prm_model import lab_rollouts

    from prm_train.data import write_rollouts
    from tdrm_search.cli import main

    write_rollouts(tmp_path / "rollouts.jsonl", lab_rollouts(8))
    argv = ["prm", "train", str(tmp_path / "rollouts.jsonl"), "--out", str(tmp_path / "run"), "--head", "likelihood"]
    argv += ["--base", POLICY_ID, "--kind", "outcome", "--epochs", "1", "--batch-size", "8"]
    assert main(argv) == 0
    meta = orjson.loads((tmp_path / "run" / "training.json").read_bytes())
    assert meta["base"] == str(offline / f"models--tdrm-test--lab-policy/snapshots/{MAIN}")
    assert main([*argv[:-8], "--base", "tdrm-test/missing"]) == 2
