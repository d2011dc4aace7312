"""Consensus stopping on the lab: generated tokens saved and accuracy changed, Best-of-N and beam at n = 16 and 64.

    python benchmarks/consensus_stop.py [--problems 100] [--ns 16 64] [--methods best_of_n beam] [--seed 0]
                                        [--dev-seed 2027] [--confidences 0.95 0.99 0.999]

Evaluation: the same held-out lab problems (the demo's evaluation seed, 2026) for every run, the lab policy on vLLM
and the shipped lab PRM (`load_prm(None)`, on transformers as in `tdrm demo`), the same sampling seed; each method
and n once without a stop and once per stopping rule (`consensus`, `weighted_consensus`; Best-of-N waves of 4).
Accuracy is the default selection (the PRM's argmax); majority and weighted majority of the same candidates are
shown too. Savings are 1 - tokens(stop) / tokens(no stop) of the same method and n.

The replay rows (what `tdrm rerank --stop` computes, and checked against it) cut a no-stop Best-of-N run's
candidates, in their order, where the rule would have stopped: the same samples, so their accuracy change carries
no sampling noise, unlike an online run's; they show every one of `--confidences`. The online runs use 0.95 (the
paper's and SearchConfig's default) and, per rule, the lowest of `--confidences` whose replay loses at most 1 point
at the largest n on a separate development set (`--dev-seed`), never chosen on the evaluation problems.
Writes benchmarks/results/consensus_stop.json and prints a table (about 8 minutes here at 100 problems).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

from tdrm_search.aggregate import select
from tdrm_search.commands.demo import DEMO_SEED
from tdrm_search.config import SearchConfig
from tdrm_search.engine import search_batch
from tdrm_search.grading import is_equivalent
from tdrm_search.loading import load_policy, load_prm
from tdrm_search.rerank import Stop, rerank
from tdrm_search.stopping import STOPS, stopping_point
from tdrm_search.table import format_table
from tdrm_search.tasks.lab import generate_problems
from tdrm_search.types import SearchResult

RESULTS = Path(__file__).parent / "results" / "consensus_stop.json"
WAVE = SearchConfig.wave  # the online runs' Best-of-N waves (the default), which the replay follows
SELECTIONS = ("argmax", "majority", "weighted_majority")


def accuracy(results: list[SearchResult], how: str) -> float:
    right = 0
    for r in results:
        chosen = select(r.candidates, how)
        right += bool(chosen and chosen.answer is not None and is_equivalent(chosen.answer, r.problem.answer))
    return right / len(results)


def summary(results: list[SearchResult], wall_s: float | None) -> dict:
    return {
        "generated_tokens": sum(r.stats["generated_tokens"] for r in results),
        "samples": sum(r.stats["samples"] for r in results) / len(results),
        "stopped_early": sum(r.stats["stopped_early"] for r in results) / len(results),
        **{f"accuracy[{how}]": accuracy(results, how) for how in SELECTIONS},
        "wall_s": wall_s,
    }


def candidates_file(results: list[SearchResult], path: Path) -> Path:
    """The runs' candidates as `tdrm rerank` input, in the order the search produced them."""
    rows = [
        {
            "id": r.problem.id,
            "answer": r.problem.answer,
            "candidates": [{"text": t.text, "answer": t.answer, "score": t.score} for t in r.candidates],
        }
        for r in results
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def replay(results: list[SearchResult], rule: str, confidence: float) -> list[SearchResult]:
    """The runs cut, candidates in their order, where the rule would have stopped Best-of-N (waves of WAVE)."""
    cut = []
    for r in results:
        answers, weights = [t.answer for t in r.candidates], [t.score for t in r.candidates]
        used = stopping_point(answers, confidence, weights if rule == "weighted_consensus" else None, WAVE)
        kept = r.candidates[:used]
        stats = {
            "samples": used,
            "stopped_early": used < len(answers),
            "generated_tokens": sum(t.num_tokens for t in kept),
        }
        cut.append(dataclasses.replace(r, candidates=kept, stats={**r.stats, **stats}))
    return cut


def compared(row: dict, base: dict) -> dict:
    """`row` with its token savings and accuracy change against the no-stop `base` of the same method and n."""
    row["saved"] = 1 - row["generated_tokens"] / base["generated_tokens"]
    row["d_accuracy"] = row["accuracy[argmax]"] - base["accuracy[argmax]"]
    return row


def replay_rows(
    results: list[SearchResult], base: dict, source: str, confidences: dict[str, list[float]]
) -> list[dict]:
    """Each rule at each of its confidences replayed on one no-stop Best-of-N run, checked against `tdrm rerank`."""
    n = base["n"]
    path = candidates_file(results, Path(tempfile.mkdtemp(prefix="consensus_stop_")) / "candidates.jsonl")
    rows = []
    for rule, levels in confidences.items():
        for confidence in levels:
            cut = replay(results, rule, confidence)
            row = {"source": source, "method": "best_of_n", "n": n, "stop": rule, "confidence": confidence}
            rows.append(compared({**row, **summary(cut, None)}, base))
            (check,) = rerank(path, ks=[n], stop=Stop(rule, confidence))  # `tdrm rerank --stop` agrees
            assert abs(check["samples"] - rows[-1]["samples"]) < 1e-9, (check, rows[-1])
            assert abs(check["best"] - rows[-1]["accuracy[argmax]"]) < 1e-9, (check, rows[-1])
    return rows


def pick(rows: list[dict], rule: str, loss: float = 0.01) -> float:
    """The lowest confidence whose replay lost at most `loss` accuracy (else the highest tried)."""
    ok = [r["confidence"] for r in rows if r["stop"] == rule and r["d_accuracy"] >= -loss - 1e-9]
    return min(ok) if ok else max(r["confidence"] for r in rows if r["stop"] == rule)


def table(rows: list[dict]) -> str:
    return format_table(
        [
            {
                "source": r["source"],
                "method": r["method"],
                "n": r["n"],
                "stop": r["stop"] or "none",
                "conf": "-" if r.get("confidence") is None else f"{r['confidence']:g}",
                "samples": f"{r['samples']:.1f}",
                "tokens": r.get("generated_tokens"),
                "saved": f"{r['saved']:.1%}",
                "acc": f"{r['accuracy[argmax]']:.3f}",
                "d acc": f"{100 * r['d_accuracy']:+.1f}",
                "maj": f"{r['accuracy[majority]']:.3f}",
                "wmaj": f"{r['accuracy[weighted_majority]']:.3f}",
            }
            for r in rows
        ],
        markdown=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--ns", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--methods", nargs="+", default=["best_of_n", "beam"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dev-seed", type=int, default=DEMO_SEED + 1, help="problem seed of the development set")
    parser.add_argument("--confidences", type=float, nargs="+", default=[0.95, 0.99, 0.999])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    started = time.perf_counter()
    policy, prm = load_policy("lab", "vllm"), load_prm(None, "hf")

    def run(problems, method: str, n: int, rule: str | None, confidence: float = 0.95, source: str = "search"):
        t0 = time.perf_counter()
        results = search_batch(
            problems, policy, prm, method=method, n=n, seed=args.seed, stop=rule, confidence=confidence
        )
        row = {"source": source, "method": method, "n": n, "stop": rule, "confidence": confidence if rule else None}
        return results, {**row, **summary(results, time.perf_counter() - t0)}

    # development set: the confidence each rule needs to lose at most 1 point at the largest n, by replay
    top = max(args.ns)
    dev, dev_base = run(generate_problems(args.problems, seed=args.dev_seed), "best_of_n", top, None, source="dev")
    rows = [compared(dev_base, dev_base)]
    rows += replay_rows(dev, dev_base, "dev replay", dict.fromkeys(STOPS, args.confidences))
    picked = {rule: pick(rows, rule) for rule in STOPS}
    print(table(rows) + f"\npicked on the development set: {picked}", flush=True)
    # evaluation set: the default 0.95 and the confidence picked on the development set
    problems = generate_problems(args.problems, seed=DEMO_SEED)
    levels = {rule: sorted({0.95, picked[rule]}) for rule in STOPS}
    for method in args.methods:
        for n in args.ns:
            results, base = run(problems, method, n, None)
            rows.append(compared(base, base))
            if method == "best_of_n":  # every confidence: the trade-off on the same samples (not a choice)
                rows += replay_rows(results, base, "replay", dict.fromkeys(STOPS, args.confidences))
            for rule in STOPS:
                for confidence in levels[rule] if method == "best_of_n" else [0.95]:
                    rows.append(compared(run(problems, method, n, rule, confidence)[1], base))
                    print(table([rows[-1]]).splitlines()[-1], flush=True)
    print("\n" + table(rows))
    out = {
        "command": "python benchmarks/consensus_stop.py "
        + " ".join(
            f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in vars(args).items()
            if k != "out"
        ),
        "problems": args.problems,
        "problem_seed": DEMO_SEED,
        "dev_problem_seed": args.dev_seed,
        "picked_confidence": picked,
        "policy": "lab (vllm)",
        "prm": "shipped lab PRM (hf)",
        "wave": WAVE,
        "rows": rows,
        "wall_s": time.perf_counter() - started,
    }
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.out} ({out['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
