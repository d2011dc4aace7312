"""`device` and `dtype`: auto picks the CPU and float32 here (CUDA and bfloat16 where a GPU is), names parse, a GPU
asked for where none exists is a one-line error, and every command that builds a transformers model takes both."""

from __future__ import annotations

import os

import pytest
import torch

from tdrm_search.cli import build_parser, main
from tdrm_search.devices import cpu_pinning, resolve_device, resolve_dtype
from tdrm_search.loading import load_policy, load_prm
from tdrm_search.policies.base import SampleRequest
from tdrm_search.vllm_engine import engine_placement

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")


@NO_GPU
def test_auto_is_the_cpu_in_float32_here():
    assert resolve_device("auto") == torch.device("cpu") and resolve_device(None) == torch.device("cpu")
    assert resolve_dtype("auto") == torch.float32 and resolve_dtype("auto", "cpu") == torch.float32


def test_auto_is_the_gpu_in_bfloat16_where_one_is(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    assert resolve_dtype("auto") == torch.bfloat16 and resolve_dtype("auto", "cpu") == torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_dtype("auto", "cuda") == torch.float16
    with pytest.raises(ValueError, match="2 CUDA GPU"):
        resolve_device("cuda:2")


@pytest.mark.parametrize(
    ("name", "dtype"),
    [("float32", torch.float32), ("fp32", torch.float32), ("bf16", torch.bfloat16), ("torch.float16", torch.float16)],
)
def test_dtype_names(name, dtype):
    assert resolve_dtype(name) == dtype and resolve_dtype(dtype) == dtype


@pytest.mark.parametrize("name", ["gpu", "mps", "cpu:1", "cuda:x"])
def test_a_name_that_is_no_device_is_refused(name):
    with pytest.raises(ValueError, match="expected"):
        resolve_device(name)
    with pytest.raises(ValueError, match="expected"):
        resolve_dtype("int8")


@NO_GPU
@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_a_gpu_where_none_exists_is_a_clear_error(name):
    with pytest.raises(ValueError, match="no CUDA GPU is available here"):
        resolve_device(name)
    with pytest.raises(ValueError, match="no CUDA GPU is available here"):
        load_policy("lab", backend="hf", device=name)
    with pytest.raises(ValueError, match="no CUDA GPU is available here"):
        load_prm("lab", backend="hf", device=name)
    with pytest.raises(ValueError, match="no CUDA GPU is available here"):
        engine_placement(name)  # the vLLM backend, before any engine starts


@NO_GPU
def test_vllm_placement_on_its_cpu_build():
    assert engine_placement("auto", "auto") == {} and engine_placement("cpu") == {}
    assert engine_placement("cpu", "bf16") == {"dtype": "bfloat16"}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_hf_policy_in_a_dtype_keeps_its_store_on_its_device(dtype, lab_problems):
    policy = load_policy("lab", backend="hf", device="auto", dtype=dtype)
    precision = resolve_dtype(dtype)
    assert policy.model.dtype == precision and policy.device == resolve_device("auto")
    prefix = tuple(policy.encode_prompt(lab_problems[0].question))
    out = policy.generate([SampleRequest(prefix, n=2, max_tokens=12, temperature=1.0, stop="\n\n", seed=3)], seed=0)
    assert len(out.samples[0]) == 2 and all(s.token_ids for s in out.samples[0])
    stored = [t for entry in policy.kv.entries.values() for kv in entry.kv for t in kv]
    assert stored and {(t.device, t.dtype) for t in stored} == {(policy.device, precision)}


def test_hf_policy_of_a_model_object_keeps_it_where_it_is(hf_lab_policy):
    from tdrm_search.policies.hf import HFPolicy

    policy = HFPolicy(hf_lab_policy.model, hf_lab_policy.tokenizer)
    assert policy.device == torch.device("cpu") and policy.model.dtype == torch.float32


def test_hf_prm_in_a_dtype(lab_problems):
    from tdrm_search.prms.base import ScoreRequest

    prm = load_prm("lab", backend="hf", dtype="bfloat16")
    assert prm.model.dtype == torch.bfloat16
    steps = ["Day 1: 3 + 4 = 7 coins.", "Answer: 7"]
    (values,) = prm.score([ScoreRequest(lab_problems[0], steps)]).scores
    assert len(values) == 2 and all(0 <= v <= 1 for v in values)


MODEL_COMMANDS = [
    ["search", "q"],
    ["bench"],
    ["demo"],
    ["prm", "collect", "--out", "x"],
    ["prm", "targets", "r"],
    ["prm", "evaluate", "r"],
    ["serve-reward"],
    ["prm", "train", "r", "--out", "o"],
]


@pytest.mark.parametrize("argv", MODEL_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_every_command_that_builds_a_model_takes_device_and_dtype(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    assert (args.device, args.dtype) == ("auto", "auto")
    args = parser.parse_args([*argv, "--device", "cpu", "--dtype", "bf16"])
    assert (args.device, args.dtype) == ("cpu", "bf16")


@NO_GPU
@pytest.mark.parametrize("backend", ["hf", "vllm"])
def test_search_on_a_missing_gpu_is_one_line(backend, capsys):
    assert main(["search", "What is 2+3?", "--backend", backend, "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no CUDA GPU is available here" in err[0], err


@pytest.mark.parametrize("head", ["lm", "value", "likelihood"])
def test_prm_training_in_bfloat16(head, tmp_path):
    """Each head trains in the dtype asked for, its loss in float32; the run records where it ran; the exported
    PRM loads in float32 on the CPU (auto) and scores."""
    import json

    from test_prm_model import lab_rollouts

    from prm_train.cli import HEAD_CONFIGS
    from prm_train.model import load_backbone
    from prm_train.targets import TargetSpec
    from prm_train.train import TrainConfig, train_prm
    from tdrm_search.loading import LAB_POLICY
    from tdrm_search.prms.base import ScoreRequest
    from tdrm_search.prms.config import PRMConfig

    config = PRMConfig(**HEAD_CONFIGS[head])
    model, _ = load_backbone(LAB_POLICY, config, device="cpu", dtype="bf16")
    assert model.dtype == torch.bfloat16 and all(p.dtype == torch.float32 for p in model.parameters() if p.ndim == 0)
    cfg = TrainConfig(TargetSpec("outcome"), rounds=1, epochs=1, batch_size=4, lr=1e-3)
    rollouts = lab_rollouts(8)
    result = train_prm(LAB_POLICY, rollouts, config, cfg, tmp_path, progress=False, log=lambda s: None, dtype="bf16")
    assert result.steps == 2 and all(loss == loss for loss in result.losses)  # finite, not NaN
    meta = json.loads((tmp_path / "training.json").read_text())
    assert (meta["device"], meta["dtype"]) == ("cpu", "bfloat16")
    prm = load_prm(str(tmp_path), backend="hf")
    assert prm.model.dtype == torch.float32
    (values,) = prm.score([ScoreRequest(rollouts[0].problem, tuple(rollouts[0].steps))]).scores
    assert len(values) == len(rollouts[0].steps)


def test_cpu_pinning_binds_a_vllm_engine_to_consecutive_cores():
    assert cpu_pinning([1]) == {"OMP_NUM_THREADS": "1", "VLLM_CPU_OMP_THREADS_BIND": "1-1"}
    assert cpu_pinning([2, 3, 4]) == {"OMP_NUM_THREADS": "3", "VLLM_CPU_OMP_THREADS_BIND": "2-4"}
    with pytest.raises(ValueError, match=r"cores \[0, 2\]: .*consecutive"):
        cpu_pinning([0, 2])


def test_server_search_refuses_server_cores_it_cannot_pin(capsys):
    from benchmarks.server_search import parse_args

    available = sorted(os.sched_getaffinity(0))
    for cores, message in (([max(available) + 1], "may run on cores"), (available, "leaves no core")):
        with pytest.raises(SystemExit):
            parse_args(["--server-cores", *map(str, cores)])
        assert message in capsys.readouterr().err
