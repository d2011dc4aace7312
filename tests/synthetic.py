"""A synthetic policy and PRM whose every sample and value is known in advance, for golden-tree tests of the
search strategies (as mctx tests its search with a synthetic model)."""

from __future__ import annotations

from tdrm_search.policies.base import GenerateOutput, Sample
from tdrm_search.prms.base import ScoreOutput

TEXT = {
    1: "Good step {}.\n\n",
    2: "Bad step {}.\n\n",
    3: "The answer is \\boxed{{1}}.",
    4: "The answer is \\boxed{{2}}.",
}
GOOD, BAD, RIGHT, WRONG = 1, 2, 3, 4


class StepPolicy:
    """One token is one step: token 10 k + kind is the k-th sample of a request. It is a good step when k is even,
    else a bad one; the third step states the answer (1 after good steps only). With `bad_ends` a bad step states
    the wrong answer at once."""

    max_model_len = 64

    def __init__(self, bad_ends: bool = False):
        self.bad_ends, self.requests = bad_ends, []

    def encode_prompt(self, question: str) -> list[int]:
        return [0]

    def decode(self, token_ids: list[int]) -> str:
        return "".join(TEXT[t % 10].format(t // 10) for t in token_ids if t)

    def generate(self, requests, seed):
        self.requests += [(r.prefix, r.n) for r in requests]
        samples = [[self.sample(r.prefix, k) for k in range(r.n)] for r in requests]
        return GenerateOutput(samples, [len(r.prefix) for r in requests], [0] * len(requests))

    def sample(self, prefix: tuple[int, ...], k: int) -> Sample:
        good = k % 2 == 0 and all(t % 10 == GOOD for t in prefix[1:])
        if len(prefix) == 3 or (self.bad_ends and k % 2):
            kind = RIGHT if good else WRONG
        else:
            kind = GOOD if k % 2 == 0 else BAD
        token = 10 * k + kind
        return Sample([token], self.decode([token]), "eos" if kind in (RIGHT, WRONG) else "stop")


class StepPRM:
    """0.9 while every step so far is good, else 0.1; records every request."""

    def __init__(self):
        self.requests = []

    def score(self, requests):
        self.requests += requests
        scores = [
            [
                0.9 if all(("Good" in s or "{1}" in s) for s in r.steps[: i + 1]) else 0.1
                for i in range(r.start, len(r.steps))
            ]
            for r in requests
        ]
        return ScoreOutput(scores, [0] * len(requests), [0] * len(requests))
