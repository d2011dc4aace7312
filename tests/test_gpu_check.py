"""scripts/gpu_check.py at its smallest, as a subprocess with the tree on PYTHONPATH: here (no CUDA) it runs the CPU
half, says the GPU half was skipped, and reports every head's training and the search."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_its_cpu_half(tmp_path):
    out = tmp_path / "gpu_check.json"
    cmd = [sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--problems", "2", "--n", "4",
           "--train-problems", "4", "--out", str(out)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["cpu"]["search"]["policy_device"] == report["cpu"]["search"]["prm_device"] == "cpu"
    assert report["cpu"]["search"]["tokens_per_second"] > 0
    for head in ("lm", "value", "likelihood"):
        row = report["cpu"]["train"][head]
        assert (row["device"], row["dtype"]) == ("cpu", "float32") and row["tokens_per_second"] > 0
    if not torch.cuda.is_available():
        assert "cuda" not in report and "skipped" in report["gpu_skipped"]
