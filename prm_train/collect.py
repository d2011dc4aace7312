"""Collect rollouts: K whole solutions per problem from any engine policy (batched; prefixes as token ids so
the prefix cache serves them), split into steps, graded, with the task's exact step labels where it has them,
and optionally m Monte-Carlo completions from every distinct non-terminal prefix (Math-Shepherd labels)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from prm_train.data import Rollout
from tdrm_search import grading
from tdrm_search.policies.base import Policy, SampleRequest
from tdrm_search.steps import split_steps
from tdrm_search.tasks import lab
from tdrm_search.types import Problem

Grader = Callable[[Problem, str], bool]
Labeler = Callable[[Problem, list[str]], list[bool]]


@dataclass(frozen=True)
class CollectConfig:
    k: int = field(default=8, metadata={"help": "rollouts per problem"})
    temperature: float = field(default=0.8, metadata={"help": "sampling temperature"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass"})
    max_tokens: int = field(default=256, metadata={"help": "tokens per rollout"})
    mc_samples: int = field(
        default=0, metadata={"flag": "--mc", "help": "Monte-Carlo completions per non-terminal prefix (0: none)"}
    )
    seed: int = field(default=0, metadata={"help": "sampling seed (and, with --split eval, the problem seed)"})
    delimiter: str = field(default="\n\n", metadata={"help": "step delimiter"})
    requests_per_call: int = field(default=512, metadata={"help": "engine requests per generate call"})

    def __post_init__(self) -> None:
        if self.k < 1 or self.mc_samples < 0 or self.max_tokens < 1:
            raise ValueError(f"need k >= 1, mc_samples >= 0, max_tokens >= 1; got {self}")


@dataclass
class CollectStats:
    rollout_tokens: int = 0
    mc_tokens: int = 0
    mc_prefixes: int = 0
    dropped: int = 0  # samples with no step (nothing generated)
    generate_calls: int = 0


def is_lab(problem: Problem) -> bool:
    return "ops" in problem.meta


def default_grader(problem: Problem, text: str) -> bool:
    return lab.grade(problem, text) if is_lab(problem) else grading.grade(text, problem.answer or "")


def default_labeler(problem: Problem) -> Labeler | None:
    return lab.step_labels if is_lab(problem) else None


def solution_steps(token_ids: list[int], decode: Callable[[list[int]], str], delimiter: str) -> list[list[int]]:
    """A rollout's steps as search cuts them (`split_steps`), ending at the first step that states an answer;
    none for a blank sample."""
    steps = split_steps(token_ids, decode, delimiter)
    end = next((i + 1 for i, s in enumerate(steps) if grading.extract_answer(decode(s)) is not None), len(steps))
    return steps[:end] if "".join(decode(s) for s in steps[:end]).strip() else []


class Collector:
    """Batched generate calls against one policy, counting tokens."""

    def __init__(self, policy: Policy, cfg: CollectConfig, progress: bool):
        self.policy, self.cfg, self.progress, self.stats = policy, cfg, progress, CollectStats()

    def generate(self, requests: list[SampleRequest], what: str) -> list[list[list[int]]]:
        out = []
        chunks = range(0, len(requests), self.cfg.requests_per_call)
        for c in tqdm(chunks, desc=what, disable=not self.progress, leave=False):
            seed = self.cfg.seed * 1_000_003 + self.stats.generate_calls
            result = self.policy.generate(requests[c : c + self.cfg.requests_per_call], seed)
            self.stats.generate_calls += 1
            out.extend([s.token_ids for s in samples] for samples in result.samples)
        return out

    def request(self, prefix: Sequence[int], n: int, used: int) -> SampleRequest:
        budget = max(1, min(self.cfg.max_tokens - used, self.policy.max_model_len - len(prefix)))
        return SampleRequest(tuple(prefix), n, budget, self.cfg.temperature, self.cfg.top_p, stop=None)


def collect(
    problems: Sequence[Problem],
    policy: Policy,
    cfg: CollectConfig,
    grader: Grader = default_grader,
    progress: bool = True,
) -> tuple[list[Rollout], CollectStats]:
    """K rollouts per problem (and MC counts when cfg.mc_samples > 0)."""
    c = Collector(policy, cfg, progress)
    decode = policy.decode
    prompts = [policy.encode_prompt(p.question) for p in problems]
    samples = c.generate([c.request(ids, cfg.k, 0) for ids in prompts], "rollouts")
    drafts = []  # (problem index, step ids)
    for i, per_problem in enumerate(samples):
        for ids in per_problem:
            c.stats.rollout_tokens += len(ids)
            steps = solution_steps(ids, decode, cfg.delimiter)
            if steps:
                drafts.append((i, steps))
            else:
                c.stats.dropped += 1
    mc = monte_carlo(c, problems, prompts, drafts, grader) if cfg.mc_samples else {}
    rollouts = []
    for i, steps in drafts:
        p, texts = problems[i], [decode(s) for s in steps]
        labeler = default_labeler(p)
        rollouts.append(
            Rollout(
                problem=p,
                steps=texts,
                step_tokens=[len(s) for s in steps],
                outcome=grader(p, "".join(texts)),
                finish="answer" if grading.extract_answer(texts[-1]) is not None else "length",
                labels=labeler(p, texts) if labeler else None,
                mc_success=[mc[prefix_key(i, steps, t)] for t in range(len(steps) - 1)] if mc else None,
                mc_samples=cfg.mc_samples,
            )
        )
    return rollouts, c.stats


def prefix_key(i: int, steps: list[list[int]], t: int) -> tuple[int, tuple[int, ...]]:
    """Problem index and the generated ids through step t: identical prefixes share their completions."""
    return i, tuple(x for s in steps[: t + 1] for x in s)


def monte_carlo(c: Collector, problems, prompts, drafts, grader: Grader) -> dict:
    """Successes out of m completions from every distinct non-terminal prefix."""
    keys = sorted({prefix_key(i, steps, t) for i, steps in drafts for t in range(len(steps) - 1)})
    c.stats.mc_prefixes = len(keys)
    requests = [c.request(prompts[i] + list(ids), c.cfg.mc_samples, len(ids)) for i, ids in keys]
    completions = c.generate(requests, "MC completions")
    counts = {}
    for (i, ids), outs in zip(keys, completions, strict=True):
        head = c.policy.decode(list(ids))
        c.stats.mc_tokens += sum(map(len, outs))
        counts[(i, ids)] = sum(grader(problems[i], head + c.policy.decode(o)) for o in outs)
    return counts
