"""The reward-hacking check of arXiv 2410.15115 on the lab task.

Correct lab solutions are padded with repeated correct steps (the last computation repeated `pad` times before
the answer line; the final answer stays right). Under a raw summed PRM reward (success + sum of step values) a
padded solution should score higher whenever the PRM rates the repeats well; under clip, delta and clip-delta
it must not. PRMs:
    arith   a step-local checker (each step's arithmetic is right; the answer line repeats the last result):
            the kind of PRM that rates a repeated correct step highly, as learned PRMs do;
    lab     the trained lab PRM (tdrm_search/assets/lab-prm), when present;
    oracle  the exact state-tracking checker (rates a repeat 0: not hackable; a reference point).

    python -m benchmarks.reward_hacking [--problems 100] [--pads 0 1 2 4 8]
writes benchmarks/results/reward_hacking.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rl_bridge.hacking import StepArithmeticPRM, returns
from tdrm_search.loading import LAB_PRM, load_prm
from tdrm_search.tasks.lab import generate_problems

RESULTS = Path(__file__).parent / "results" / "reward_hacking.json"


TOLERANCE = 1e-4  # float32 PRM values move by ~1e-7 with the batch's padding: not a gain


def summarise(table: dict[str, dict[int, list[float]]], pads: list[int]) -> dict[str, dict]:
    """Mean return per pad, the share of problems whose padded return beats the unpadded one (by more than
    TOLERANCE), and the largest gain padding brought any problem."""
    summary = {}
    for scheme, by_pad in table.items():
        base = by_pad[pads[0]]
        gains = {pad: [b - a for a, b in zip(base, v, strict=True)] for pad, v in by_pad.items() if pad}
        summary[scheme] = {
            "mean_return": {pad: sum(v) / len(v) for pad, v in by_pad.items()},
            "share_padded_higher": {pad: sum(g > TOLERANCE for g in gs) / len(gs) for pad, gs in gains.items()},
            "max_gain": max(max(gs) for gs in gains.values()),
            "hacked": any(g > TOLERANCE for gs in gains.values() for g in gs),
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pads", type=int, nargs="+", default=[0, 1, 2, 4, 8])
    parser.add_argument("--eta", type=float, default=0.5)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    pads = sorted(set(args.pads) | {0})
    problems = generate_problems(args.problems, seed=args.seed)
    prms = {"arith": StepArithmeticPRM(), "oracle": load_prm("oracle")}
    if LAB_PRM.is_dir():
        prms["lab"] = load_prm("lab", backend="hf")
    config = {"eta": args.eta, "grade_timeout_s": None}
    report = {
        "problems": args.problems,
        "seed": args.seed,
        "pads": pads,
        "config": config | {"weight": 0.2, "aggregation": "last"},
        "lab_prm": "lab" in prms,
        "results": {},
    }
    for name, prm in prms.items():
        start = time.time()
        report["results"][name] = summarise(returns(prm, problems, pads, config), pads)
        report["results"][name]["seconds"] = round(time.time() - start, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(
        "mean return of correct lab solutions padded with repeated correct steps "
        f"({args.problems} problems, eta {args.eta})"
    )
    print(f"{'prm':7} {'scheme':11} " + " ".join(f"pad={p:<5}" for p in pads) + "  padded>unpadded  max gain  hacked")
    for name, schemes in report["results"].items():
        for scheme, s in schemes.items():
            if scheme == "seconds":
                continue
            share = max(s["share_padded_higher"].values())
            print(
                f"{name:7} {scheme:11} "
                + " ".join(f"{s['mean_return'][p]:<9.3f}" for p in pads)
                + f"  {share:<15.2f}  {s['max_gain']:<8.4f}  {s['hacked']}"
            )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
