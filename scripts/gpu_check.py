"""GPU check (issue 28): the transformers path on one GPU against the same runs on this machine's CPU.

    PYTHONPATH=. python scripts/gpu_check.py [--problems 16] [--n 8] [--out benchmarks/results/gpu_check.json]

Needs torch and transformers (and accelerate), not vLLM. For each device (the CPU, then `cuda` when torch sees a
GPU; without one the GPU half is skipped and the report says so):

- search: the lab policy (HFPolicy) and the shipped lab PRM (HFPRM) run beam search on --problems lab problems at
  n = --n: wall time, generated tokens per second, accuracy, the device each model ran on, peak GPU memory;
- training: a short `prm train` of each head (lm, value, likelihood; TD(0) targets, one epoch) on the same rollouts
  (collected once, on the CPU, with the HF policy): wall time, training tokens per second, device and dtype from the
  run's training.json, peak GPU memory.

dtype "auto": bfloat16 on the GPU, float32 on the CPU, so the two halves differ in precision as well as device.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prm_train.cli import HEAD_CONFIGS  # noqa: E402
from prm_train.collect import collect  # noqa: E402
from prm_train.config import CollectConfig, TrainConfig  # noqa: E402
from prm_train.targets import TargetSpec  # noqa: E402
from prm_train.train import train_prm  # noqa: E402
from tdrm_search.devices import model_device  # noqa: E402
from tdrm_search.engine import search_batch  # noqa: E402
from tdrm_search.loading import LAB_POLICY, LAB_PRM  # noqa: E402
from tdrm_search.policies.hf import HFPolicy  # noqa: E402
from tdrm_search.prms.config import PRMConfig  # noqa: E402
from tdrm_search.prms.hf import HFPRM  # noqa: E402
from tdrm_search.tasks.lab import generate_problems, train_seed  # noqa: E402

HEADS = ("lm", "value", "likelihood")


class Peak:
    """Wall time and (on a GPU) peak allocated memory of the block."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
        self.seconds = time.perf_counter() - self.started
        self.peak_mib = round(torch.cuda.max_memory_allocated() / 2**20, 1) if self.cuda else None


def search_row(device: str, problems, n: int) -> dict:
    policy, prm = HFPolicy(LAB_POLICY, device=device), HFPRM(LAB_PRM, device=device)
    search_batch(problems[:2], policy, prm, method="beam", n=4, seed=0, max_tokens=256)  # warm-up (kernels, caches)
    with Peak(device) as peak:
        results = search_batch(problems, policy, prm, method="beam", n=n, seed=0, max_tokens=256)
    tokens = int(sum(r.stats.get("generated_tokens", 0) for r in results))
    return {
        "policy_device": str(model_device(policy.model)),
        "prm_device": str(model_device(prm.model)),
        "dtype": str(policy.model.dtype).removeprefix("torch."),
        "problems": len(problems),
        "n": n,
        "accuracy": sum(bool(r.correct) for r in results) / len(results),
        "generated_tokens": tokens,
        "seconds": round(peak.seconds, 2),
        "tokens_per_second": round(tokens / peak.seconds, 1),
        "peak_gpu_mib": peak.peak_mib,
    }


def train_row(device: str, head: str, rollouts, epochs: int) -> dict:
    cfg = TrainConfig(TargetSpec("td0"), epochs=epochs, batch_size=16, lr=5e-4, seed=0)
    with tempfile.TemporaryDirectory() as run_dir, Peak(device) as peak:
        result = train_prm(LAB_POLICY, rollouts, PRMConfig(**HEAD_CONFIGS[head]), cfg, run_dir, progress=False,
                           log=lambda s: None, device=device)  # fmt: skip
        meta = json.loads((Path(run_dir) / "training.json").read_text())
    return {
        "device": meta["device"],
        "dtype": meta["dtype"],
        "rollouts": len(rollouts),
        "steps": result.steps,
        "final_loss": round(result.losses[-1], 4),
        "train_tokens": result.tokens,
        "seconds": round(peak.seconds, 2),  # loading, training and export
        "train_seconds": round(result.seconds, 2),
        "tokens_per_second": round(result.tokens / max(result.seconds, 1e-9), 1),
        "peak_gpu_mib": peak.peak_mib,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--problems", type=int, default=16, help="lab problems searched on each device")
    p.add_argument("--n", type=int, default=8, help="beam search budget")
    p.add_argument("--train-problems", type=int, default=32, help="lab training problems (4 rollouts each)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--heads", nargs="+", default=list(HEADS), choices=HEADS)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu_check.json")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    gpu = torch.cuda.is_available()
    report = {
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda_available": gpu,
            "gpu": torch.cuda.get_device_name(0) if gpu else None,
            "cpu_threads": torch.get_num_threads(),
        },
        "setup": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    problems = generate_problems(args.problems, seed=1)
    policy = HFPolicy(LAB_POLICY, device="cpu")
    train_problems = generate_problems(args.train_problems, seed=train_seed(0))
    rollouts, _ = collect(train_problems, policy, CollectConfig(n=4, max_tokens=256), progress=False)
    del policy
    devices = ["cpu"] + (["cuda"] if gpu else [])
    for device in devices:
        half = {"search": search_row(device, problems, args.n)}
        half["train"] = {head: train_row(device, head, rollouts, args.epochs) for head in args.heads}
        report[device] = half
        print(json.dumps({device: half}, indent=1), flush=True)
    if gpu:
        cpu, cuda = report["cpu"], report["cuda"]
        report["speedup"] = {"search": round(cpu["search"]["seconds"] / cuda["search"]["seconds"], 2)}
        for h in args.heads:
            ratio = cpu["train"][h]["train_seconds"] / cuda["train"][h]["train_seconds"]
            report["speedup"][f"train_{h}"] = round(ratio, 2)
    else:
        report["gpu_skipped"] = "torch sees no CUDA GPU here: the CPU half ran, the GPU half was skipped"
        print(report["gpu_skipped"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
