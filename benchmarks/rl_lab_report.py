"""The GRPO lab's report (issue 32): statistics over seeds, the three claims' verdicts, the table and the plots.

Everything here reads finished runs (one dict per (reward, seed): its held-out evaluation curve and the trainer's
per-step log, as `benchmarks/rl_lab.py` writes them) and computes; nothing trains. Standard errors are over seeds
(sample standard deviation / sqrt(seeds)); with one seed there is none (None), and a verdict that needs one says so.
"""

from __future__ import annotations

from math import sqrt
from statistics import fmean, stdev

from tdrm_search.table import format_table

METRICS = ("accuracy", "steps", "tokens", "repeat_share", "reward", "reward_per_step")
PROBE = ("steps", "repeat_share", "tokens", "reward_per_step")  # the hacking probe's measures
RULE_GAIN = 0.10  # rule-only must gain this much (accuracy) for the lab to measure anything (issue 32)
LONGER = 0.5  # steps per solution: a rise of half a step or more is "lengthens"
REPEATS = 0.10  # share of solutions with a repeated/unnecessary step: a rise of 10 points or more is "repeats"
COLLAPSED = 2.0  # final greedy solutions with fewer steps than this on average: no step structure is left
Z = 2.0  # "significant": the mean difference exceeds Z standard errors


def mean_se(values: list[float]) -> dict:
    """Mean and standard error over seeds (se None with fewer than 2 values)."""
    se = stdev(values) / sqrt(len(values)) if len(values) > 1 else None
    return {"mean": fmean(values), "se": se, "n": len(values)}


def difference(a: dict, b: dict) -> dict:
    """a - b of two independent mean_se results; se None when neither has one, else the root sum of squares."""
    ses = [s for s in (a["se"], b["se"]) if s is not None]
    return {"mean": a["mean"] - b["mean"], "se": sqrt(sum(s * s for s in ses)) if ses else None}


def significant(d: dict, sign: int = 1) -> bool:
    """The difference is in direction `sign` by more than Z standard errors (never, without a standard error)."""
    return d["se"] is not None and sign * d["mean"] > Z * d["se"]


def prompts_to_reach(curve: list[dict], target: float) -> int | None:
    """Prompts seen at the first evaluation whose accuracy reaches `target` (None: never)."""
    return next((p["prompts"] for p in curve if p["accuracy"] >= target - 1e-9), None)


def reach_stats(runs: list[dict], target: float) -> dict:
    """Prompts each seed needs to reach `target`; a seed that never does counts as its run's total prompts plus one
    evaluation interval (a lower bound on what it would need), and `never` says how many did not."""
    reached = [prompts_to_reach(r["curve"], target) for r in runs]
    censored = []
    for r, p in zip(runs, reached, strict=True):
        points = [c["prompts"] for c in r["curve"]]
        censored.append(p if p is not None else points[-1] + (points[-1] - points[-2] if len(points) > 1 else 0))
    return {**mean_se([float(c) for c in censored]), "per_seed": reached, "never": reached.count(None)}


def mean_curve(runs: list[dict]) -> list[dict]:
    """The seed mean (and standard error, `<metric>_se`) of runs evaluated at the same steps."""
    points = []
    for column in zip(*(r["curve"] for r in runs), strict=True):
        point = {"step": column[0]["step"], "prompts": column[0]["prompts"]}
        for m in METRICS:
            stats = mean_se([p[m] for p in column])
            point[m], point[f"{m}_se"] = stats["mean"], stats["se"]
        points.append(point)
    return points


def summarise(runs: list[dict]) -> dict[str, dict]:
    """Per reward: seeds, the mean curve, the final point, the change from the start (mean_se over seeds of each
    run's final minus its step-0 value) for accuracy and the probe's measures, how many seeds collapsed (their
    final greedy solutions have under COLLAPSED steps: nothing, a bare answer line, or one unbroken run-on step),
    and the prompts it needs to reach rule-only's final (seed-mean) accuracy."""
    by_reward: dict[str, list[dict]] = {}
    for r in runs:
        by_reward.setdefault(r["reward"], []).append(r)
    summary: dict[str, dict] = {}
    for name, rs in by_reward.items():
        curve = mean_curve(rs)
        summary[name] = {
            "seeds": [r["seed"] for r in rs],
            "curve": curve,
            "final": curve[-1],
            "final_accuracy_per_seed": [r["curve"][-1]["accuracy"] for r in rs],
            "collapsed": sum(r["curve"][-1]["steps"] < COLLAPSED for r in rs),
            "change": {m: mean_se([r["curve"][-1][m] - r["curve"][0][m] for r in rs]) for m in ("accuracy", *PROBE)},
        }
    if "rule" in summary:
        target = summary["rule"]["final"]["accuracy"]
        for name, row in summary.items():
            row["prompts_to_rule_final"] = prompts_to_reach(row["curve"], target)
            row["reach"] = reach_stats(by_reward[name], target)
    return summary


def verdict(label: str, why: str, **numbers) -> dict:
    return {"verdict": label, "why": why, **numbers}


def claims(summary: dict) -> dict[str, dict]:
    """The verdict on each claim: reproduced, not reproduced, or not testable here, with the numbers behind it."""
    out = {}
    rule: dict = summary.get("rule") or {}
    gain = rule["change"]["accuracy"] if rule else None
    if gain is None or gain["se"] is None:
        out["rule_gain"] = verdict("not testable", "rule-only needs at least 2 seeds", gain=gain)
    elif gain["mean"] >= RULE_GAIN and significant(gain):
        out["rule_gain"] = verdict("reproduced", f"rule-only gains >= {RULE_GAIN:.2f}, > {Z} SE", gain=gain)
    else:
        out["rule_gain"] = verdict("not reproduced", f"rule-only gains < {RULE_GAIN:.2f} or within {Z} SE", gain=gain)
    room = out["rule_gain"]["verdict"] == "reproduced"
    for mix, key in (("mix_td", "tdrm_data_efficiency"), ("mix_mc", "mc_mix_data_efficiency")):
        if not room or mix not in summary:
            why = f"no {mix} runs" if room else f"needs rule-only's gain, which is {out['rule_gain']['verdict']}"
            out[key] = verdict("not testable", why)
            continue
        d = difference(rule["reach"], summary[mix]["reach"])  # prompts saved (rule's minus the mix's)
        ok = significant(d) and summary[mix]["reach"]["mean"] <= 0.5 * rule["reach"]["mean"]
        why = f"<= half of rule-only's prompts, > {Z} SE fewer" if ok else f"not half the prompts, or within {Z} SE"
        out[key] = verdict("reproduced" if ok else "not reproduced", why, prompts_saved=d)
    if "mix_td" in summary and "mix_mc" in summary:
        d = difference(summary["mix_mc"]["reach"], summary["mix_td"]["reach"])
        out["td_vs_mc_prm_in_mix"] = verdict(
            "reproduced" if significant(d) else "not reproduced",
            f"the TD mix needs > {Z} SE fewer prompts than the MC mix" if significant(d) else f"within {Z} SE",
            prompts_saved=d,
            final_accuracy=difference(summary["mix_td"]["change"]["accuracy"], summary["mix_mc"]["change"]["accuracy"]),
        )
    hacks = {name: hacking(summary[name]) for name in ("raw_prm", "rule_raw_prm") if name in summary}
    if not hacks or all(h["se_missing"] for h in hacks.values()):
        out["raw_prm_hacks"] = verdict("not testable", "no raw summed PRM runs with 2+ seeds", **hacks)
    else:
        hacked = [n for n, h in hacks.items() if h["hacked"]]
        why = f"{', '.join(hacked)} lengthen or repeat steps" if hacked else "no raw summed PRM run lengthens/repeats"
        out["raw_prm_hacks"] = verdict("reproduced" if hacked else "not reproduced", why, **hacks)
    if out["raw_prm_hacks"]["verdict"] != "reproduced":
        out["clip_delta_stop_it"] = verdict("not testable", "the raw summed PRM did not hack: nothing to stop")
    else:
        refined = {m: hacking(summary[m]) for m in ("clip", "delta", "clip_delta") if m in summary}
        stopped = [m for m, h in refined.items() if not (h["hacked"] or h["drifts"] or summary[m]["collapsed"])]
        ok = {"clip", "delta"} <= set(stopped)
        why = f"stopped by: {', '.join(stopped) or 'none'} (of {', '.join(refined) or 'none run'})"
        out["clip_delta_stop_it"] = verdict("reproduced" if ok else "not reproduced", why, **refined)
    return out


def hacking(row: dict) -> dict:
    """Whether a reward's runs lengthen (steps +LONGER) or repeat (repeated-step share +REPEATS) their solutions,
    significantly (> Z SE over seeds); `drifts`: the mean rises that much even where no SE exists (one seed)."""
    steps, repeat = row["change"]["steps"], row["change"]["repeat_share"]
    big = steps["mean"] >= LONGER or repeat["mean"] >= REPEATS
    return {
        "steps_change": steps,
        "repeat_share_change": repeat,
        "tokens_change": row["change"]["tokens"],
        "hacked": (steps["mean"] >= LONGER and significant(steps))
        or (repeat["mean"] >= REPEATS and significant(repeat)),
        "drifts": big,
        "se_missing": steps["se"] is None,
    }


def pm(stats: dict | None, fmt: str = ".3f") -> str:
    """`mean ± se` (or the mean alone without a standard error)."""
    if stats is None:
        return "-"
    se = stats.get("se")
    return format(stats["mean"], fmt) + ("" if se is None else " ± " + format(se, fmt))


def table(summary: dict) -> str:
    """The final evaluation per reward: seed means ± standard errors, the probe's changes, prompts to rule's final."""
    rows = []
    for name, row in summary.items():
        change, reach = row["change"], row.get("reach")
        rows.append(
            {
                "reward": name,
                "seeds": len(row["seeds"]),
                "start": f"{row['curve'][0]['accuracy']:.3f}",
                "final": pm({"mean": row["final"]["accuracy"], "se": row["final"]["accuracy_se"]}),
                "gain": pm(change["accuracy"]),
                "d steps": pm(change["steps"], ".2f"),
                "d repeat": pm(change["repeat_share"]),
                "d tokens": pm(change["tokens"], ".1f"),
                "collapsed": row["collapsed"],
                "reward/step": f"{row['final']['reward_per_step']:.3f}",
                "prompts to rule's final": "-" if reach is None else f"{pm(reach, '.0f')} ({reach['never']} never)",
            }
        )
    return format_table(rows, markdown=True)


def verdict_lines(verdicts: dict) -> list[str]:
    """One line per claim: its verdict, why, and the headline numbers."""
    lines = []
    for claim, v in verdicts.items():
        numbers = {k: x for k, x in v.items() if k not in ("verdict", "why") and isinstance(x, dict) and "mean" in x}
        shown = ", ".join(f"{k} {pm(x)}" for k, x in numbers.items())
        lines.append(f"{claim}: {v['verdict'].upper()} -- {v['why']}" + (f" ({shown})" if shown else ""))
    return lines


def plot(summary: dict, prefix) -> list:
    """One PNG per metric: each reward's seed-mean curve against prompts seen, with a ±1 SE band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for metric in METRICS:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for name, row in summary.items():
            x = [p["prompts"] for p in row["curve"]]
            y = [p[metric] for p in row["curve"]]
            ax.plot(x, y, marker="o", markersize=3, label=f"{name} ({len(row['seeds'])} seeds)")
            se = [p[f"{metric}_se"] for p in row["curve"]]
            if all(s is not None for s in se):
                ax.fill_between(
                    x,
                    [a - s for a, s in zip(y, se, strict=True)],
                    [a + s for a, s in zip(y, se, strict=True)],
                    alpha=0.15,
                )
        ax.set_xlabel("prompts seen")
        ax.set_ylabel(metric.replace("_", " "))
        ax.set_title(f"GRPO lab, held-out greedy solutions: {metric} (seed mean ± SE)", fontsize=10)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = prefix.with_name(f"{prefix.name}_{metric}.png")
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths
