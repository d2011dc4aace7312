"""The reward-hacking probe of arXiv 2410.15115 on the lab task: correct solutions padded with repeated correct
steps, scored under each reward scheme. A scheme is hackable when padding raises the return
(`benchmarks/reward_hacking.py` runs it; tests hold the probe to the lab's step format)."""

from __future__ import annotations

import re

from rl_bridge.reward import RewardConfig, RewardFunction, RewardItem, RewardOutput
from tdrm_search.prms.base import ScoreOutput, ScoreRequest
from tdrm_search.tasks.lab import STEP_DELIMITER, reference_solution

MODES = ("mix", "clip", "delta", "clip_delta")
_STEP = re.compile(r"^(?:Day \d+: )?(\d+) ([-+*]) (\d+) = (\d+)$")  # the lab's "Day k: a op b = c"
_ANSWER = re.compile(r"^The answer is (\d+)\.$")


class StepArithmeticPRM:
    """Value 1 for a step whose own arithmetic is right (or an answer line that states the last result), else 0."""

    def score(self, requests: list[ScoreRequest]) -> ScoreOutput:
        scores = []
        for r in requests:
            values, last = [], None
            for step in r.steps:
                m, a = _STEP.match(step.strip()), _ANSWER.match(step.strip())
                if m:
                    x, op, y, z = int(m[1]), m[2], int(m[3]), int(m[4])
                    ok = {"+": x + y, "-": x - y, "*": x * y}[op] == z
                    last = z
                else:
                    ok = bool(a) and last is not None and int(a[1]) == last
                values.append(float(ok))
            scores.append(values[r.start :])
        return ScoreOutput(scores, [0] * len(requests), [0] * len(requests))


def raw_sum(out: RewardOutput, rule: bool = True) -> float | None:
    """The naive summed return of a scored completion: its PRM step values summed (plus the rule reward); None
    when it abstained."""
    if out.reward is None:
        return None
    return sum(out.step_scores) + (out.rule if rule else 0.0)


def padded(solution: str, pad: int) -> str:
    """The solution with its last computation step repeated `pad` more times before the answer line."""
    steps = solution.split(STEP_DELIMITER)
    return STEP_DELIMITER.join(steps[:-1] + [steps[-2]] * pad + steps[-1:])


def returns(prm, problems, pads: list[int], config: dict) -> dict[str, dict[int, list[float]]]:
    """Per reward scheme and pad count, each problem's return (raw_sum: success + sum of raw step values)."""
    items = {
        pad: [RewardItem(p.question, padded(reference_solution(p), pad), p.answer, meta=p.meta) for p in problems]
        for pad in pads
    }
    out: dict[str, dict[int, list[float]]] = {"raw_sum": {}}
    for mode in MODES:
        fn = RewardFunction(RewardConfig(mode=mode, **config), prm)
        out[mode] = {}
        for pad in pads:
            results = fn.score(items[pad])
            if any(r.reward is None for r in results):
                raise RuntimeError(f"{mode}, pad {pad}: {next(r.error for r in results if r.error)}")
            out[mode][pad] = [r.reward for r in results]
            if mode == "mix":  # the same PRM values: the naive summed return
                out["raw_sum"][pad] = [raw_sum(r) for r in results]
        fn.close()
    return out
