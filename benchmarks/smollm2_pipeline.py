"""The path a GPU user takes, end to end on a real pretrained model: SmolLM2-135M-Instruct searches GSM8K *train*
problems, the search trees become training data, a TD PRM (value head, tree TD(0)) is trained from SmolLM2's own
weights and exported, and the engine searches held-out GSM8K *test* problems with it.

    python benchmarks/smollm2_pipeline.py [--trees 200] [--k 4] [--test-problems 4] [--model smollm2] [--out FILE]

SmolLM2-135M is too weak to gain accuracy here (it rarely solves GSM8K); this proves the pipeline, not a gain.
Writes benchmarks/results/smollm2_pipeline.json (counts and seconds of every stage). `--model lab` runs the same
stages on the lab policy (no download; what the smoke test runs).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from prm_train.collect import collect
from prm_train.config import CollectConfig, TrainConfig
from prm_train.targets import TargetSpec
from prm_train.train import train_prm
from tdrm_search.datasets import load_dataset
from tdrm_search.engine import search_batch
from tdrm_search.loading import LAB_POLICY, load_policy, resolve
from tdrm_search.prms.config import PRMConfig
from tdrm_search.prms.hf import HFPRM

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).parent / "results" / "smollm2_pipeline.json"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trees", type=int, default=200, help="GSM8K train problems to search")
    p.add_argument("--k", type=int, default=4, help="search budget n per tree")
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--test-problems", type=int, default=4)
    p.add_argument("--work", type=Path, default=Path("/tmp/tdrm_smollm2"))
    p.add_argument("--model", default="smollm2", help="policy and PRM backbone: smollm2, lab or a folder")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    report, clock = {"setup": {k: str(v) for k, v in vars(args).items()}}, time.perf_counter()

    def stage(name: str, **facts) -> None:
        nonlocal clock
        report[name] = {**facts, "seconds": round(time.perf_counter() - clock, 1)}
        clock = time.perf_counter()
        print(name, json.dumps(report[name]), flush=True)

    policy = load_policy(args.model, backend="vllm")
    stage("load_policy")
    train = load_dataset("gsm8k", DATA / "gsm8k_train.jsonl", limit=args.trees)
    cfg = CollectConfig(method="beam", n=args.k, max_tokens=args.max_tokens)
    rollouts, stats = collect(train, policy, cfg)
    stage("collect", trees=stats.trees, nodes=stats.nodes, rollouts=len(rollouts), tokens=stats.rollout_tokens)
    run = args.work / "prm"
    config = PRMConfig(head="value", step_join="\n\n")
    train_cfg = TrainConfig(TargetSpec("tree_td0"), rounds=1, epochs=1, batch_size=8, lr=1e-5, max_len=768)
    result = train_prm(resolve(args.model, LAB_POLICY, "base"), rollouts, config, train_cfg, run, progress=False)
    stage("train", losses=result.losses, steps=result.steps)
    test = load_dataset("gsm8k", DATA / "gsm8k_test.jsonl", limit=args.test_problems)
    results = search_batch(test, policy, HFPRM(run), method="beam", n=args.k, max_tokens=args.max_tokens)
    stage(
        "search",
        problems=len(results),
        correct=sum(bool(r.correct) for r in results),
        answers=[r.answer for r in results],
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
