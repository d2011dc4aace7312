"""Consensus stopping on the lab: generated tokens saved and accuracy changed, Best-of-N and beam at n = 16 and 64.

    python benchmarks/consensus_stop.py [--problems 100] [--ns 16 64] [--methods best_of_n beam] [--seed 0]

Every run searches the same held-out lab problems (the demo's evaluation seed) with the lab policy on vLLM and the
shipped lab PRM (`load_prm(None)`, on transformers as in `tdrm demo`), with the same sampling seed, once without a
stop and once per stopping rule (`consensus`, `weighted_consensus`; confidence 0.95, Best-of-N waves of 4: the
SearchConfig defaults). Accuracy is the default selection (the PRM's argmax); majority and weighted majority of the
same candidates are shown too. Savings are 1 - tokens(stop) / tokens(no stop) of the same method and n.

The offline replay (what `tdrm rerank --stop` computes) cuts each no-stop Best-of-N run's candidates, in their
order, where the rule would have stopped: the same samples, so its accuracy change carries no sampling noise.
Writes benchmarks/results/consensus_stop.json and prints a table.
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
from tdrm_search.engine import search_batch
from tdrm_search.grading import is_equivalent
from tdrm_search.loading import load_policy, load_prm
from tdrm_search.rerank import Stop, rerank
from tdrm_search.stopping import STOPS, stopping_point
from tdrm_search.tasks.lab import generate_problems
from tdrm_search.types import SearchResult

RESULTS = Path(__file__).parent / "results" / "consensus_stop.json"
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


def replay(results: list[SearchResult], rule: str) -> list[SearchResult]:
    """The runs cut, candidates in their order, where the rule would have stopped Best-of-N (waves of 4)."""
    cut = []
    for r in results:
        answers, weights = [t.answer for t in r.candidates], [t.score for t in r.candidates]
        used = stopping_point(answers, weights=weights if rule == "weighted_consensus" else None, wave=4)
        kept = r.candidates[:used]
        cut.append(
            dataclasses.replace(
                r,
                candidates=kept,
                stats={
                    **r.stats,
                    "samples": used,
                    "stopped_early": used < len(answers),
                    "generated_tokens": sum(t.num_tokens for t in kept),
                },
            )
        )
    return cut


def table(rows: list[dict]) -> str:
    head = ["source", "method", "n", "stop", "samples", "tokens", "saved", "acc", "d acc", "maj", "wmaj"]
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for r in rows:
        tokens = "-" if r.get("generated_tokens") is None else str(r["generated_tokens"])
        lines.append(
            " | ".join(
                [
                    r["source"],
                    r["method"],
                    str(r["n"]),
                    r["stop"] or "none",
                    f"{r['samples']:.1f}",
                    tokens,
                    f"{r['saved']:.1%}",
                    f"{r['accuracy[argmax]']:.3f}",
                    f"{100 * r['d_accuracy']:+.1f}",
                    f"{r['accuracy[majority]']:.3f}",
                    f"{r['accuracy[weighted_majority]']:.3f}",
                ]
            )
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=100)
    parser.add_argument("--ns", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--methods", nargs="+", default=["best_of_n", "beam"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    started = time.perf_counter()
    policy, prm = load_policy("lab", "vllm"), load_prm(None, "hf")
    problems = generate_problems(args.problems, seed=DEMO_SEED)
    rows: list[dict] = []
    work = Path(tempfile.mkdtemp(prefix="consensus_stop_"))
    for method in args.methods:
        for n in args.ns:
            base = None
            for rule in (None, *STOPS):
                t0 = time.perf_counter()
                results = search_batch(problems, policy, prm, method=method, n=n, seed=args.seed, stop=rule)
                row = {"source": "search", "method": method, "n": n, "stop": rule}
                row.update(summary(results, time.perf_counter() - t0))
                base = base or row
                row["saved"] = 1 - row["generated_tokens"] / base["generated_tokens"]
                row["d_accuracy"] = row["accuracy[argmax]"] - base["accuracy[argmax]"]
                rows.append(row)
                print(table([row]).splitlines()[-1], flush=True)
                if rule is None and method == "best_of_n":
                    path = candidates_file(results, work / f"best_of_n_{n}.jsonl")
                    for stop in STOPS:
                        cut = replay(results, stop)
                        rep = {"source": "replay", "method": method, "n": n, "stop": stop, **summary(cut, None)}
                        rep["saved"] = 1 - rep["generated_tokens"] / row["generated_tokens"]
                        rep["d_accuracy"] = rep["accuracy[argmax]"] - row["accuracy[argmax]"]
                        # `tdrm rerank --stop` on the same candidates agrees
                        (check,) = rerank(path, ks=[n], stop=Stop(stop))
                        assert abs(check["samples"] - rep["samples"]) < 1e-9, (check, rep)
                        assert abs(check["best"] - rep["accuracy[argmax]"]) < 1e-9, (check, rep)
                        rows.append(rep)
    print("\n" + table(rows))
    out = {
        "command": "python benchmarks/consensus_stop.py "
        + " ".join(
            f"--{k} {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in vars(args).items() if k != "out"
        ),
        "problems": args.problems,
        "problem_seed": DEMO_SEED,
        "policy": "lab (vllm)",
        "prm": "shipped lab PRM (hf)",
        "confidence": 0.95,
        "wave": 4,
        "rows": rows,
        "wall_s": time.perf_counter() - started,
    }
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.out} ({out['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
