"""prm_train under accelerate with two real processes on the CPU (gloo): the same global batch gives the same loss
curve and weights as one process, and a two-process run killed after a checkpoint resumes to the same weights.

The processes are started by torchrun (`python -m torch.distributed.run`), the launcher `accelerate launch
--multi_gpu` runs underneath: accelerate 1.16's `launch --cpu --num_processes 2` starts one process unless an
mpirun host file is given. The Accelerator in each process reads torchrun's environment (MULTI_CPU, gloo).

Tolerance (measured here: losses within 1e-6 relative, weights within 3e-5 after 20 AdamW steps at lr 3e-3):
losses rtol 1e-5, weights atol 2e-4. The processes pad their own micro-batches and sum their gradients in another
order, so float rounding differs; Adam's normalised steps carry that into the weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from conftest import tiny_qwen2
from safetensors.torch import load_file
from test_prm_model import CONFIG, lab_rollouts
from transformers import AutoTokenizer

from prm_train.config import TrainConfig
from prm_train.data import write_rollouts
from prm_train.evaluate import score_rollouts
from prm_train.targets import TargetSpec
from prm_train.train import fit, train_prm
from tdrm_search.loading import LAB_POLICY
from tdrm_search.prms.hf import HFPRM

ROOT = Path(__file__).resolve().parents[1]
ARGS = "--kind td_lambda --gamma 0.9 --rounds 2 --epochs 3 --batch-size 8 --lr 3e-3 --seed 1 --device cpu".split()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("accelerate")
    write_rollouts(folder / "rollouts.jsonl", lab_rollouts(40))
    return folder


def command(data: Path, lab_base: Path, out: Path, processes: int, *extra: str) -> list[str]:
    launch = [sys.executable]
    if processes > 1:
        launch += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    train = ["-m", "prm_train.cli", "train", str(data / "rollouts.jsonl"), "--base", str(lab_base), "--out", str(out)]
    return launch + train + ARGS + list(extra)


def environment() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def run(cmd: list[str]) -> str:
    done = subprocess.run(cmd, cwd=ROOT, env=environment(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def assert_same_weights(a: Path, b: Path, atol: float) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], atol=atol, rtol=0, msg=key)


@pytest.fixture(scope="module")
def two(data, lab_base):
    """The uninterrupted two-process run (2 micro-batches per process: the global batch stays 8)."""
    run(command(data, lab_base, data / "two", 2, "--grad-accum", "2"))
    return data / "two"


def test_two_processes_match_one_at_the_same_global_batch(data, lab_base, two):
    run(command(data, lab_base, data / "one", 1))
    one_meta, two_meta = (json.loads((d / "training.json").read_text()) for d in (data / "one", two))
    assert (one_meta["processes"], two_meta["processes"]) == (1, 2)
    assert one_meta["steps"] == two_meta["steps"] == 2 * 3 * 5  # 40 rollouts, global batch 8
    assert one_meta["tokens"] == two_meta["tokens"]
    torch.testing.assert_close(torch.tensor(two_meta["losses"]), torch.tensor(one_meta["losses"]), rtol=1e-5, atol=0)
    assert_same_weights(data / "one", two, atol=2e-4)


def test_two_processes_resume_after_a_kill(data, lab_base, two):
    out = data / "killed"
    cmd = command(data, lab_base, out, 2, "--grad-accum", "2")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=environment(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    ckpt, deadline = out / "checkpoint.pt", time.monotonic() + 240
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    workers = psutil.Process(proc.pid).children(recursive=True)  # torchrun starts its workers in their own sessions
    for p in [psutil.Process(proc.pid), *workers]:  # the launcher and both workers, mid-run
        p.kill()
    psutil.wait_procs(workers, timeout=30)
    proc.wait()
    state = torch.load(ckpt, weights_only=False)["state"]
    assert (state["round"], state["epoch"]) < (2, 0), "the run ended before the kill: nothing left to resume"
    log = run(cmd + ["--resume"])
    assert f"resumed {ckpt} at round {state['round']} epoch {state['epoch']}" in log
    assert json.loads((out / "training.json").read_text())["losses"] == pytest.approx(
        json.loads((two / "training.json").read_text())["losses"], rel=1e-6
    )
    assert_same_weights(two, out, atol=1e-6)


def small_fit(tokenizer, **kw):
    model = tiny_qwen2(len(tokenizer), seed=0)
    cfg = dict(targets=TargetSpec("td_lambda", gamma=0.9), rounds=1, epochs=2, batch_size=8, lr=3e-3, seed=1)
    result = fit(model, tokenizer, CONFIG, lab_rollouts(24), TrainConfig(**{**cfg, **kw}), progress=False,
                 log=lambda s: None)  # fmt: skip
    return model, result


def test_gradient_accumulation_and_checkpointing_keep_the_step():
    tokenizer = AutoTokenizer.from_pretrained(LAB_POLICY)
    plain, a = small_fit(tokenizer)
    accumulated, b = small_fit(tokenizer, grad_accum=3, grad_checkpointing=True)
    torch.testing.assert_close(torch.tensor(a.losses), torch.tensor(b.losses), rtol=1e-5, atol=0)
    for x, y in zip(plain.state_dict().values(), accumulated.state_dict().values(), strict=True):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=0)


def test_lora_trains_the_adapters_and_exports_a_plain_model(lab_base, tmp_path):
    pytest.importorskip("peft")
    cfg = TrainConfig(TargetSpec("tdrm_td0"), epochs=1, batch_size=8, lr=1e-2, lora_r=4)
    result = train_prm(lab_base, lab_rollouts(16), CONFIG, cfg, tmp_path, progress=False, log=lambda s: None)
    assert result.steps == 2
    before, after = weights(lab_base), weights(tmp_path)
    assert after.keys() == before.keys()  # merged: no adapter weights left
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed and all("proj" in k for k in changed)  # the adapted linear layers only; embeddings untouched
    values = score_rollouts(HFPRM(tmp_path), lab_rollouts(2))
    assert all(0 <= v <= 1 for row in values for v in row)
