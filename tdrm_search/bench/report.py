"""A run's records as a summary table and accuracy plots."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def summarize(
    records: Iterable[dict[str, Any]], by: Sequence[str] = ("dataset", "method", "n")
) -> list[dict[str, Any]]:
    """Accuracy (failed records count as wrong), failures, mean generated tokens and seconds per problem, per group.
    When the records were graded under several extraction policies, each one's accuracy too ("accuracy[flexible]")."""
    records = list(records)
    policies = list(dict.fromkeys(p for r in records for p in r.get("extractions") or {}))
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[tuple(r.get(k) for k in by)].append(r)
    rows = []
    for key in sorted(
        groups, key=lambda k: tuple((v is None, v if isinstance(v, (int, float)) else str(v)) for v in k)
    ):
        rs = groups[key]
        ok = [r for r in rs if r["status"] == "ok"]
        rows.append(
            {
                **dict(zip(by, key, strict=True)),
                "problems": len(rs),
                "failed": len(rs) - len(ok),
                "accuracy": sum(bool(r["correct"]) for r in rs) / len(rs),
                **({f"accuracy[{p}]": share(rs, "correct", p) for p in policies} if len(policies) > 1 else {}),
                "majority@n": share(rs, "majority_correct"),
                "pass@n": share(rs, "pass_correct"),
                "mean_tokens": sum(r["generated_tokens"] for r in ok) / len(ok) if ok else None,
                "s_per_problem": sum(r["wall_s"] for r in ok) / len(ok) if ok else None,
            }
        )
    return rows


def share(records: list[dict[str, Any]], key: str, policy: str | None = None) -> float | None:
    """The share of records whose `key` is true, under extraction `policy` when one is named (failed ones count
    as false); None when no record has it."""
    values = [(r.get("extractions") or {}).get(policy, {}).get(key) if policy else r.get(key) for r in records]
    if all(v is None for v in values):
        return None
    return sum(bool(v) for v in values) / len(values)


REFERENCES = (("majority@n", "majority vote", "--"), ("pass@n", "pass@n", ":"))  # of Best-of-N's own samples


def plot(rows: list[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """Per dataset, two PNGs from `summarize` rows: accuracy vs budget n, and vs mean generated tokens. Majority
    vote and pass@n of Best-of-N's samples are drawn as grey reference lines: what no verifier, and a perfect
    one, would make of the same samples."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for dataset in sorted({r["dataset"] for r in rows}):
        for x, label in (("n", "budget n"), ("mean_tokens", "mean generated tokens per problem")):
            fig, ax = plt.subplots(figsize=(7.5, 3.6))
            for method in sorted({r["method"] for r in rows if r["dataset"] == dataset}):
                points = sorted(
                    (r[x], r["accuracy"])
                    for r in rows
                    if r["dataset"] == dataset and r["method"] == method and r[x] is not None
                )
                if points:
                    ax.plot(*zip(*points, strict=True), marker="o", label=method)
            samples = [r for r in rows if r["dataset"] == dataset and r["method"] == "best_of_n" and r[x] is not None]
            for key, name, style in REFERENCES:
                points = sorted((r[x], r[key]) for r in samples if r[key] is not None)
                if points:
                    ax.plot(*zip(*points, strict=True), style, color="grey", label=f"{name} (Best-of-N's samples)")
            ax.set_xscale("log", base=2 if x == "n" else 10)
            ax.set(xlabel=label, ylabel="accuracy", title=dataset, ylim=(0, 1.02))
            ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.02, 0.5))
            ax.grid(alpha=0.3)
            stem = re.sub(r"[^\w.-]+", "_", dataset)
            path = out_dir / f"{stem}_accuracy_vs_{'budget' if x == 'n' else 'tokens'}.png"
            fig.tight_layout()
            fig.savefig(path, dpi=120)
            plt.close(fig)
            paths.append(path)
    return paths
