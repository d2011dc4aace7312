"""The lab PRM comparison's numbers and report (`prm_lab.py` runs the pipeline): the no-verifier references, the
per-problem accuracies standard errors are taken over, the mean and spread over seeds of each headline metric, and
the Markdown table, paired differences and plot it writes.
"""

from __future__ import annotations

from pathlib import Path
from statistics import fmean, stdev

from prm_train.data import Rollout
from prm_train.evaluate import best_of_n, final_answers, majority_of_n, pools_by_problem
from tdrm_search.table import format_table

NS = (4, 16, 64)
SEARCH_METHODS = ("beam", "mcts")  # the search rows, on the first --search-problems eval problems


def baselines(rollouts: list[Rollout], ns) -> dict:
    """No-verifier references on the same pools: majority vote, and pass@n (any rollout right)."""
    pools = pools_by_problem(rollouts)
    correct = [r.outcome for r in rollouts]
    return {
        "pass": {str(n): best_of_n([float(c) for c in correct], correct, pools, n) for n in ns},
        "majority": {str(n): majority_of_n(final_answers(rollouts), correct, pools, n) for n in ns},
    }


def per_problem_bon(rollouts: list[Rollout], values, n: int) -> list[float]:
    """BoN@n (last) accuracy of each problem: the unit standard errors are taken over."""
    scores, correct = [v[-1] for v in values], [r.outcome for r in rollouts]
    return [best_of_n(scores, correct, [pool], n) for pool in pools_by_problem(rollouts)]


def paired_difference(a: list[list[float]], b: list[list[float]]) -> dict:
    """Mean and standard error (over problems) of per-problem accuracy a - b, each first averaged over seeds."""
    diffs = [fmean(x) - fmean(y) for x, y in zip(zip(*a, strict=True), zip(*b, strict=True), strict=True)]
    return {"mean": fmean(diffs), "se": stdev(diffs) / len(diffs) ** 0.5, "problems": len(diffs)}


def summarise(rows: dict, ns=NS) -> dict:
    """Mean and standard deviation over seeds of each headline metric."""
    keys: dict[str, tuple[str, ...]] = {f"bon_last@{n}": ("best_of_n", "last", str(n)) for n in ns}
    keys |= {f"bon_min@{n}": ("best_of_n", "min", str(n)) for n in ns}
    keys |= {f"wmaj@{n}": ("weighted_majority", "last", str(n)) for n in ns}
    keys |= {f"{m}@{n}": (m, str(n)) for m in SEARCH_METHODS for n in ns}
    keys |= {"within_auc": ("within_problem_auc", "last"), "step_auc": ("step_auc",)}
    keys |= {"first_error_f1": ("first_error", "f1"), "td_error": ("smoothness", "td_error")}
    out = {}
    for name, path in keys.items():
        vals = []
        for row in rows.values():
            x = row
            for k in path:
                x = x.get(k) if isinstance(x, dict) else None
            if x is not None:
                vals.append(x)
        out[name] = {"mean": fmean(vals), "sd": stdev(vals) if len(vals) > 1 else 0.0} if vals else None
    return out


def fmt(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, dict):
        return f"{x['mean']:.3f}" + (f" ± {x['sd']:.3f}" if x["sd"] else "")
    return f"{x:.3f}"


def table(report: dict) -> str:
    """Every PRM's headline metrics, then the reference rows (backbone likelihood, oracle, majority, pass@n)."""
    cols = [f"bon_last@{n}" for n in NS] + ["bon_min@16", "wmaj@16", "wmaj@64"]
    cols += [f"{m}@{n}" for m in SEARCH_METHODS for n in NS] + ["within_auc", "step_auc", "first_error_f1", "td_error"]
    rows = [(name, entry["data_tokens"], entry["summary"]) for name, entry in report["prms"].items()]
    for ref, label in (("backbone_likelihood", "backbone likelihood (no PRM training)"), ("oracle", "oracle")):
        rows.append((label, "", report[ref]["summary"]))
    for ref in ("majority", "pass"):
        base = {f"{m}@{n}": x for m in ("bon_last", "wmaj") for n, x in report["baselines"][ref].items()}
        rows.append((f"{ref} (no verifier)", "", base))
    cells = [{"PRM": name, "data tokens": tokens, **{c: fmt(got.get(c)) for c in cols}} for name, tokens, got in rows]
    return format_table(cells, markdown=True)


def markdown(report: dict, head: str) -> str:
    """The report page: the table, then each TD - MC paired difference of BoN@16."""
    md = f"# Lab PRM comparison at equal labelling compute ({head} head)\n\n" + table(report) + "\n"
    for pair, d in report.get("td_minus_mc_bon16", {}).items():
        md += f"\nBoN@16 {pair}: {d['mean']:+.3f} ± {d['se']:.3f} (standard error over {d['problems']} problems)\n"
    return md


def plot(report: dict, ns: tuple[int, ...], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, entry in report["prms"].items():
        ax.plot(ns, [entry["summary"][f"bon_last@{n}"]["mean"] for n in ns], marker="o", label=f"BoN, {name}")
    for ref in ("majority", "pass"):
        ax.plot(ns, [report["baselines"][ref][str(n)] for n in ns], "k--" if ref == "majority" else "k:", label=ref)
    ax.set(xscale="log", xlabel="n (solutions)", ylabel="accuracy", title="lab, held-out pool", xticks=ns)
    ax.set_xticklabels([str(n) for n in ns])
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
