"""A reward for RL with verifiable rewards: the grader's verdict, optionally combined with a PRM.

Modes (method.md, sections 1-2):
    rule        the verifiable reward only;
    mix         TDRM: w * PRM + (1 - w) * rule, the PRM's trajectory value a probability in [0, 1];
    clip, delta, clip_delta   process rewards from the PRM's step values (`rl_bridge.refinements`).
In every mode the success (rule) reward sits at the last step, so a trajectory's scalar reward is the sum of
its per-step rewards. An item that cannot be scored (no reference answer, invalid PRM values) abstains:
reward None and an `error` saying why; adapters turn that into None (TRL) or a documented neutral value.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rl_bridge.refinements import REFINEMENTS
from tdrm_search.aggregate import AGGREGATIONS, aggregate
from tdrm_search.extraction import ENGINE_POLICY, extract
from tdrm_search.grading import GradingPool, GradingTimeout, extract_answer, is_equivalent
from tdrm_search.prms.base import PRM, ScoreOutput, ScoreRequest, check_scores
from tdrm_search.steps import split_steps, split_text
from tdrm_search.types import Problem

log = logging.getLogger(__name__)

MODES = ("rule", "mix", *REFINEMENTS)


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class RewardConfig:
    """How rewards are computed. `eta` and `scale` apply to clip/delta; `weight`, `aggregation` and
    `drop_answer_step` to mix. `grade_timeout_s` bounds each answer comparison, run on `grade_workers` worker
    processes at once (None: in the calling thread one at a time, bounded only by the grader's input guard)."""

    mode: str = field(default="mix", metadata={"choices": MODES, "help": "how the reward is computed"})
    correct: float = field(default=1.0, metadata={"help": "success reward of a right answer"})
    incorrect: float = field(default=0.0, metadata={"help": "success reward of a wrong answer"})
    weight: float = field(default=0.2, metadata={"help": "mix: PRM weight w"})
    aggregation: str = field(default="last", metadata={"help": "mix: last, min, prod or mean"})
    drop_answer_step: bool = field(default=False, metadata={"help": "mix: score the solution without its answer"})
    eta: float = field(default=0.5, metadata={"help": "clip threshold"})
    scale: float = field(default=1.0, metadata={"help": "clip/delta process reward scale"})
    delimiter: str = field(default="\n\n", metadata={"help": "step delimiter"})
    grade_timeout_s: float | None = field(default=5.0, metadata={"help": "seconds per answer comparison"})
    grade_workers: int = field(
        default=4, metadata={"help": "grading worker processes: a batch's answers are compared this many at a time"}
    )

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown reward mode {self.mode!r}; choose one of {list(MODES)}")
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"weight must lie in [0, 1], got {self.weight}")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"unknown aggregation {self.aggregation!r}; choose one of {sorted(AGGREGATIONS)}")
        for name in ("correct", "incorrect", "eta", "scale"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be finite, got {getattr(self, name)}")
        if not self.delimiter:
            raise ValueError("delimiter must not be empty")
        if self.grade_workers < 1:
            raise ValueError(f"grade_workers must be >= 1, got {self.grade_workers}")

    @property
    def uses_prm(self) -> bool:
        return self.mode != "rule"


@dataclass(frozen=True)
class RewardItem:
    """One completion to reward. `completion_ids` (with a decode function given to `score`) makes step ends
    token positions; `meta` is the problem's checker metadata (needed only by the oracle PRM)."""

    question: str
    completion: str
    reference: str | None
    completion_ids: Sequence[int] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class RewardOutput:
    """A trajectory's scalar reward (None: abstain) and its per-step rewards.

    step_rewards[k] is placed where step k ends: char_ends[k] (index of its last character in the completion)
    and, when token ids were given, token_ends[k] (index of its last token). sum(step_rewards) == reward.
    """

    reward: float | None
    rule: float | None
    prm: float | None  # the PRM's trajectory value (aggregated) in [0, 1], when a PRM scored it
    step_scores: list[float]
    step_rewards: list[float]
    char_ends: list[int]
    token_ends: list[int] | None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Steps:
    texts: list[str]
    char_ends: list[int]
    token_ends: list[int] | None


def _cumulative_ends(lengths: list[int]) -> list[int]:
    ends, total = [], 0
    for n in lengths:
        total += n
        ends.append(total - 1)
    return ends


def split_completion(
    completion: str,
    delimiter: str,
    completion_ids: Sequence[int] | None = None,
    decode: Callable[[list[int]], str] | None = None,
) -> Steps:
    """Steps of a completion (delimiter kept with the step it ends), with where each ends in characters
    and, given token ids and a decode function, in tokens. Blank text gives no step."""
    if completion_ids is not None and decode is not None:
        pieces = split_steps(list(completion_ids), decode, delimiter)
        texts = [decode(p) for p in pieces]
    else:
        pieces, texts = None, split_text(completion, delimiter)
    if not "".join(texts).strip():  # blank text: nothing to reward step by step
        return Steps([], [], [] if pieces is not None else None)
    token_ends = _cumulative_ends([len(p) for p in pieces]) if pieces is not None else None
    return Steps(texts, _cumulative_ends([len(t) for t in texts]), token_ends)


def question_from_prompt(prompt: str, template: str | None) -> str:
    """The question inside a rendered prompt, given the template that rendered it (with `{question}`), e.g.
    "Q: {question}\\nA:\\n"; the whole prompt when there is no template or it does not match."""
    if not template:
        return prompt
    head, _, tail = template.partition("{question}")
    pattern = re.escape(head) + "(.*)" + re.escape(tail)
    match = re.fullmatch(pattern, prompt, flags=re.DOTALL) or re.search(pattern, prompt, flags=re.DOTALL)
    return match.group(1) if match else prompt


# ---------------------------------------------------------------- the reward function


class RewardFunction:
    """Rewards a batch of completions: one grading pass (every answer compared at once over `grade_workers` worker
    processes, bounded time each) and one PRM call."""

    def __init__(self, config: RewardConfig | None = None, prm: PRM | None = None):
        self.config = config or RewardConfig()
        if self.config.uses_prm and prm is None:
            raise ValueError(f"reward mode {self.config.mode!r} needs a PRM; use mode 'rule' without one")
        self.prm = prm if self.config.uses_prm else None
        self.grader = GradingPool(self.config.grade_workers)

    @classmethod
    def load(cls, prm: str | None = None, backend: str = "hf", **config: Any) -> RewardFunction:
        """A reward function with an engine PRM by spec ("lab", "oracle" or a PRM folder; see `load_prm`)."""
        cfg = RewardConfig(**config)
        if not cfg.uses_prm:
            return cls(cfg)
        from tdrm_search.loading import load_prm

        return cls(cfg, load_prm(prm, backend=backend))

    def close(self) -> None:
        self.grader.close()

    def rules(self, items: Sequence[RewardItem]) -> list[float | str]:
        """Each item's verifiable reward, or why there is none (no reference; the grader itself failed). Answers are
        extracted here and compared all at once over the grading workers; a comparison past its time is wrong."""
        cfg = self.config
        out: dict[int, float | str] = {}
        pairs, where = [], []
        for k, item in enumerate(items):
            if item.reference is None or not str(item.reference).strip():
                out[k] = "no reference answer: cannot grade"
                continue
            answer = extract(item.completion, ENGINE_POLICY).answer
            if answer is None:
                out[k] = cfg.incorrect
                continue
            pairs.append((answer, str(item.reference)))
            where.append(k)
        verdicts: Sequence[bool | GradingTimeout | str]
        try:
            if cfg.grade_timeout_s is None:
                verdicts = [is_equivalent(pred, gold) for pred, gold in pairs]
            else:
                verdicts = self.grader.equivalent_all(pairs, cfg.grade_timeout_s)
        except Exception as err:  # comparisons never raise on input; this is a worker process failing to start
            log.warning("grading failed: %s: %s", type(err).__name__, err)
            verdicts = [f"grading failed: {err}"] * len(pairs)
        for k, verdict in zip(where, verdicts, strict=True):
            if isinstance(verdict, GradingTimeout):
                log.warning("%s", verdict)
            out[k] = verdict if isinstance(verdict, str) else cfg.correct if verdict is True else cfg.incorrect
        return [out[k] for k in range(len(items))]

    def prm_steps(self, steps: Steps) -> tuple[str, ...]:
        """The steps the PRM scores: all of them, or for mix with drop_answer_step the solution without its
        final-answer paragraph (kept when it is the only step)."""
        texts = tuple(t.strip() for t in steps.texts)
        cfg = self.config
        if cfg.mode == "mix" and cfg.drop_answer_step and len(texts) > 1 and extract_answer(texts[-1]) is not None:
            return texts[:-1]
        return texts

    def _prm_scores(self, requests: list[ScoreRequest]) -> list[list[float] | str]:
        """Each request's step values, or an error message for the requests the PRM failed on."""
        if not requests:
            return []
        assert self.prm is not None  # requests are made in the PRM modes only
        try:
            output = self.prm.score(requests)
            if len(output.scores) != len(requests):
                raise ValueError(f"PRM returned {len(output.scores)} score lists for {len(requests)} requests")
        except Exception as err:  # a PRM failure must not crash a trainer: the batch abstains
            log.warning("PRM failed on a batch of %d: %s: %s", len(requests), type(err).__name__, err)
            return [f"PRM failed: {err}"] * len(requests)
        out: list[list[float] | str] = []
        for request, scores in zip(requests, output.scores, strict=True):
            try:
                check_scores([request], ScoreOutput([scores], [0], [0]))
                out.append([float(s) for s in scores])
            except ValueError as err:
                log.warning("%s", err)
                out.append(str(err))
        return out

    def score(
        self, items: Sequence[RewardItem], decode: Callable[[list[int]], str] | None = None
    ) -> list[RewardOutput]:
        """Rewards for all items, in order; never raises on bad items (they abstain with an error)."""
        cfg = self.config
        steps = [split_completion(i.completion or "", cfg.delimiter, i.completion_ids, decode) for i in items]
        rules = self.rules(items)
        scored = (
            [k for k, rule in enumerate(rules) if not isinstance(rule, str) and steps[k].texts] if cfg.uses_prm else []
        )
        requests = [
            ScoreRequest(
                Problem(items[k].question, items[k].reference, meta=dict(items[k].meta)), self.prm_steps(steps[k])
            )
            for k in scored
        ]
        values = dict(zip(scored, self._prm_scores(requests), strict=True))
        return [self._combine(rules[k], steps[k], values.get(k)) for k in range(len(items))]

    def _combine(self, rule: float | str, steps: Steps, values: list[float] | str | None) -> RewardOutput:
        """The success reward at the last step, process rewards (clip/delta) at every step; a str is an error."""
        cfg = self.config
        n = len(steps.texts)
        result = RewardOutput(None, None, None, [], [0.0] * n, steps.char_ends, steps.token_ends)
        if isinstance(rule, str):
            result.error = rule
            return result
        if isinstance(values, str):
            result.error = values
            return result
        result.rule = rule
        process, terminal = [0.0] * n, rule
        if values is not None:
            prm = aggregate(values, cfg.aggregation)
            result.step_scores, result.prm = values, prm
            if cfg.mode == "mix":
                terminal = cfg.weight * prm + (1 - cfg.weight) * rule
            else:
                process = REFINEMENTS[cfg.mode](values, cfg.eta, cfg.scale)
        if n:
            process[-1] += terminal
        result.step_rewards, result.reward = process, sum(process) if n else terminal
        return result
