"""The lab PRM comparison at equal labelling compute: outcome, Monte-Carlo (Math-Shepherd) labels, TD(0), n-step TD
and TD(λ) with online re-targeting, TDRM's own in-step TD(0) and 2-step TD (tdrm_td0, tdrm_td2: targets from the
network in every step, γ = 0.8), and targets read from the engine's own search trees (tree MC, tree TD(0));
exact step labels as the ceiling; majority vote, pass@n, the exact checker and the backbone's own step likelihood
(no PRM training) as reference rows.

    python benchmarks/prm_lab.py --base BACKBONE [--head lm|likelihood] [--seeds 0 1 2] [--quick] [--ship]

Every PRM starts from the same backbone (--base: a causal LM folder on the lab tokenizer, e.g. one pre-trained on
reference solutions with `benchmarks/lab/train_policy.py --layers 4`), trains the same epochs, and is evaluated on
the same held-out pool (eval seed 1). Labelling compute is generated tokens, counted by the engine: the path kinds
train on --problems x --k best-of-n rollouts; the MC kinds on the first problems whose rollouts plus MC completions
cost about as much; the tree kinds on beam-search trees (no verifier) on the first problems whose trees cost about
as much. Stages are cached under --work (rollouts as JSONL, one run folder per PRM and seed), so a rerun resumes.
Writes benchmarks/results/lab_prm_comparison.{json,md,png} (`--head likelihood`: lab_prm_comparison_likelihood.*;
several seeds: a `_seedsK` suffix; --results DIR: another folder), summarised and drawn by `prm_lab_report.py`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from statistics import fmean

import torch
from prm_lab_report import NS, SEARCH_METHODS, baselines, markdown, paired_difference, per_problem_bon, plot, summarise

from prm_train.collect import collect
from prm_train.config import CollectConfig, TrainConfig
from prm_train.data import Rollout, read_rollouts, write_rollouts
from prm_train.evaluate import evaluate_prm, evaluate_values, score_rollouts
from prm_train.export import CHECKPOINT, TRAINING_FILE
from prm_train.targets import TargetSpec
from prm_train.train import train_prm
from tdrm_search.engine import search_batch
from tdrm_search.loading import LAB_POLICY, LAB_PRM
from tdrm_search.prms.config import PRMConfig
from tdrm_search.prms.hf import HFPRM
from tdrm_search.prms.oracle import OraclePRM
from tdrm_search.prms.vllm import VLLMPRM
from tdrm_search.tasks.lab import generate_problems, train_seed

RESULTS = Path(__file__).parent / "results"
HEADS = {  # the read-out every PRM of one run trains (--head): a step-tag classifier, or the LM's own likelihood
    "lm": PRMConfig(step_join="\n\n", aggregation="last"),
    "likelihood": PRMConfig(head="likelihood", step_join="\n\n", aggregation="last"),
}
DATA = {"outcome": "paths", "exact": "paths", "td_lambda": "paths", "mc_soft": "mc", "tree_mc": "trees"}
DATA |= {"tree_td0": "trees", "td0": "paths", "nstep": "paths", "tdrm_td0": "paths", "tdrm_td2": "paths"}
TD_KINDS = ("td_lambda", "tree_td0", "td0", "nstep", "tdrm_td0", "tdrm_td2")
IN_STEP_KINDS = ("tdrm_td0", "tdrm_td2")  # TDRM's schedule: targets in every step, gamma 0.8, no rounds
MC_KINDS = ("mc_soft",)


def cached(path: Path, make) -> tuple[list[Rollout], dict]:
    """Rollouts and collection stats from `path`, collecting them first when absent."""
    stats_file = path.with_suffix(".stats.json")
    if path.exists() and stats_file.exists():
        return read_rollouts(path), json.loads(stats_file.read_text())
    started = time.perf_counter()
    rollouts, stats = make()
    write_rollouts(path, rollouts)
    info = {**vars(stats), "seconds": round(time.perf_counter() - started, 1), "rollouts": len(rollouts)}
    info["accuracy"] = fmean(r.outcome for r in rollouts)
    stats_file.write_text(json.dumps(info, indent=2))
    return rollouts, info


def train_config(kind: str, seed: int, args) -> TrainConfig:
    rounds = args.td_rounds if kind in TD_KINDS and kind not in IN_STEP_KINDS else 1
    spec = TargetSpec(kind, gamma=None if kind in IN_STEP_KINDS else 1.0, lam=args.lam)
    return TrainConfig(spec, rounds=rounds, epochs=max(1, args.epochs // rounds), batch_size=32, lr=args.lr, seed=seed)


def trained(run_dir: Path) -> dict | None:
    meta = run_dir / TRAINING_FILE
    data = json.loads(meta.read_text()) if meta.exists() else {}
    return data if "losses" in data else None


def evaluated(run_dir: Path, eval_rollouts, search_problems, policy, ns, search_ns) -> dict:
    """A trained PRM's evaluation row, cached beside it (eval.json), so a rerun only adds what is new."""
    cache = run_dir / "eval.json"
    row = json.loads(cache.read_text()) if cache.exists() else {}
    if "best_of_n" not in row:
        started = time.perf_counter()
        values = score_rollouts(HFPRM(run_dir, batch_size=64), eval_rollouts)
        row |= evaluate_values(values, eval_rollouts, ns)
        row["per_problem_bon16"] = per_problem_bon(eval_rollouts, values, 16) if 16 in ns else []
        row["train_seconds"] = trained(run_dir)["seconds"]
        row["eval_seconds"] = round(time.perf_counter() - started, 1)
        cache.write_text(json.dumps(row) + "\n")
    if add_search_rows(row, search_problems, policy, lambda: VLLMPRM(run_dir), search_ns):
        cache.write_text(json.dumps(row) + "\n")
    return row


def backbone_likelihood(args, eval_rollouts, ns) -> dict:
    """The pool metrics of the backbone's own step likelihood, untrained (likelihood head, scale 1, bias 0), cached."""
    cache = args.work / f"likelihood-{args.base.name}.json"
    if not cache.exists():
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(args.base)
        prm = HFPRM(model, AutoTokenizer.from_pretrained(args.base), HEADS["likelihood"], batch_size=64)
        cache.write_text(json.dumps(evaluate_values(score_rollouts(prm, eval_rollouts), eval_rollouts, ns)) + "\n")
    return json.loads(cache.read_text())


def add_search_rows(row: dict, problems, policy, make_prm, ns) -> bool:
    """Fill `row[method][n]` (accuracy on `problems`) for every search method and budget it lacks; True if any.
    Rows searched on another number of problems are searched again."""
    if row.get("search_problems") != len(problems):
        for method in SEARCH_METHODS:
            row.pop(method, None)
    row["search_problems"] = len(problems)
    missing = [(m, n) for m in SEARCH_METHODS for n in ns if problems and str(n) not in row.get(m, {})]
    prm = make_prm() if missing else None
    for method, n in missing:  # the engine's defaults (beam: n // 4 beams of 4 expansions each)
        results = search_batch(problems, policy, prm, method=method, n=n, seed=0, max_tokens=256)
        row.setdefault(method, {})[str(n)] = fmean(bool(r.correct) for r in results)
    return bool(missing)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", type=Path, default=LAB_POLICY, help="backbone every PRM starts from")
    p.add_argument("--work", type=Path, default=Path("/tmp/tdrm_prm_lab"))
    p.add_argument("--problems", type=int, default=300, help="training problems of the path kinds")
    p.add_argument("--k", type=int, default=8, help="rollouts (or tree leaves) per training problem")
    p.add_argument("--mc", type=int, default=4, help="MC completions per prefix")
    p.add_argument("--eval-problems", type=int, default=100)
    p.add_argument("--pool", type=int, default=64)
    p.add_argument("--search-problems", type=int, default=30, help="eval problems of the beam and MCTS rows")
    p.add_argument("--search-ns", type=int, nargs="+", default=list(NS), help="budgets of the beam and MCTS rows")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--td-rounds", type=int, default=2)
    p.add_argument("--lam", type=float, default=0.7)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--kinds", nargs="+", default=list(DATA), choices=list(DATA))
    p.add_argument("--head", default="lm", choices=list(HEADS), help="the read-out every PRM trains")
    p.add_argument("--threads", type=int, default=2, help="torch threads for training and scoring")
    p.add_argument("--quick", action="store_true", help="a few minutes: 40 x 4 training, 20 x 16 eval, 1 epoch")
    p.add_argument("--ship", action="store_true", help="copy the best TD PRM to tdrm_search/assets/lab-prm")
    p.add_argument("--name", help="results file stem (default: lab_prm_comparison[_HEAD][_seedsK])")
    p.add_argument("--results", type=Path, default=RESULTS, help="folder of the .json, .md and .png")
    args = p.parse_args()
    if args.quick:
        args.problems, args.k, args.eval_problems, args.pool, args.search_problems, args.epochs = 40, 4, 20, 16, 8, 2
        args.td_rounds, args.work = 1, args.work.with_name(args.work.name + "_quick")
    ns = tuple(n for n in NS if n <= args.pool)
    args.work.mkdir(parents=True, exist_ok=True)
    args.results.mkdir(parents=True, exist_ok=True)

    from tdrm_search.policies.vllm import VLLMPolicy

    policy = VLLMPolicy(LAB_POLICY)
    problems = generate_problems(args.problems, seed=train_seed(0))
    eval_problems = generate_problems(args.eval_problems, seed=1)
    data, stats = {}, {}
    needed = {DATA[kind] for kind in args.kinds}  # a stage no requested kind trains on is not collected
    data["paths"], stats["paths"] = cached(args.work / "paths.jsonl", lambda: collect(problems, policy, cfg(args)))
    budget = stats["paths"]["rollout_tokens"]  # the labelling compute every kind gets: the paths' tokens
    spent = {"paths": budget}
    if "mc" in needed:  # about a third of the problems, since MC completions cost ~2x the rollouts (measured)
        mc_problems = problems[: max(1, round(args.problems * budget / (budget + 2.1 * budget)))]
        data["mc"], stats["mc"] = cached(
            args.work / "mc.jsonl", lambda: collect(mc_problems, policy, cfg(args, mc_samples=args.mc))
        )
        spent["mc"] = stats["mc"]["rollout_tokens"] + stats["mc"]["mc_tokens"]
    if "trees" in needed:
        data["trees"], stats["trees"] = cached(
            args.work / "trees.jsonl", lambda: collect(problems, policy, cfg(args, method="beam"))
        )
        data["trees"], spent["trees"] = within_budget(data["trees"], stats["trees"]["tree_tokens"], budget)
    eval_rollouts, stats["eval"] = cached(
        args.work / "eval.jsonl", lambda: collect(eval_problems, policy, cfg(args, n=args.pool, seed=1))
    )
    print(json.dumps(stats), flush=True)
    torch.set_num_threads(args.threads)
    report = {
        "setup": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "collect": stats,
        "baselines": baselines(eval_rollouts, ns),
        "prms": {},
    }
    search_ns = [n for n in args.search_ns if n in ns]
    oracle_file = args.work / "oracle.json"
    oracle = (
        json.loads(oracle_file.read_text()) if oracle_file.exists() else evaluate_prm(OraclePRM(), eval_rollouts, ns)
    )
    add_search_rows(oracle, eval_problems[: args.search_problems], policy, OraclePRM, search_ns)
    oracle_file.write_text(json.dumps(oracle) + "\n")
    report["oracle"] = {"summary": summarise({0: oracle}, ns)}
    report["backbone_likelihood"] = {"summary": summarise({0: backbone_likelihood(args, eval_rollouts, ns)}, ns)}
    per_kind, stem = {}, "lab_prm_comparison" + ("" if args.head == "lm" else f"_{args.head}")
    stem += f"_seeds{len(args.seeds)}" if len(args.seeds) > 1 else ""
    stem = args.name or stem
    for kind in args.kinds:
        rollouts = data[DATA[kind]]
        rows, per_kind[kind] = {}, []
        for seed in args.seeds:
            run_dir = args.work / f"{args.head}-{kind}-s{seed}"
            if trained(run_dir) is None:
                print(f"training {kind} seed {seed} on {len(rollouts)} rollouts", flush=True)
                train_prm(args.base, rollouts, HEADS[args.head], train_config(kind, seed, args), run_dir, True, False)
            rows[seed] = row = evaluated(
                run_dir, eval_rollouts, eval_problems[: args.search_problems], policy, ns, search_ns
            )
            per_kind[kind].append(row["per_problem_bon16"])
            print(kind, seed, json.dumps(summarise({seed: row}, ns)), flush=True)
        report["prms"][kind] = {
            "data_tokens": spent[DATA[kind]],
            "rollouts": len(rollouts),
            "summary": summarise(rows, ns),
            "seeds": rows,
        }
        (args.results / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    tds, mcs = [k for k in per_kind if k in TD_KINDS], [k for k in per_kind if k in MC_KINDS]
    if tds and mcs and all(per_kind[k][0] for k in tds + mcs):
        report["td_minus_mc_bon16"] = {
            f"{t} - {m}": paired_difference(per_kind[t], per_kind[m]) for t in tds for m in mcs
        }
    (args.results / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    md = markdown(report, args.head)
    (args.results / f"{stem}.md").write_text(md)
    plot(report, ns, args.results / f"{stem}.png")
    print(md)
    if args.ship and tds:
        best = max(tds, key=lambda k: report["prms"][k]["summary"]["wmaj@16"]["mean"])
        seed = max(args.seeds, key=lambda s: report["prms"][best]["seeds"][s]["weighted_majority"]["last"]["16"])
        shutil.rmtree(LAB_PRM, ignore_errors=True)
        shutil.copytree(args.work / f"{args.head}-{best}-s{seed}", LAB_PRM, ignore=shutil.ignore_patterns(CHECKPOINT))
        print(f"shipped {best} seed {seed} to {LAB_PRM}")


def cfg(args, **overrides) -> CollectConfig:
    return CollectConfig(**{"n": args.k, "seed": 0, **overrides})


def within_budget(rollouts: list[Rollout], tree_tokens: list[int], budget: int) -> tuple[list[Rollout], int]:
    """The rollouts of the first trees whose generated tokens (pruned branches included) fit `budget`."""
    spent, trees = 0, 0
    while trees < len(tree_tokens) and spent + tree_tokens[trees] <= budget:
        spent, trees = spent + tree_tokens[trees], trees + 1
    return [r for r in rollouts if r.tree < trees], spent


if __name__ == "__main__":
    main()
