"""The process-reward refinements against reward hacking (arXiv 2410.15115; method.md, section 2): per-step PRM
values r_1..r_K in, per-step process rewards out.

    clip        scale * min(r_k - eta, 0): never positive, so extra steps never pay;
    delta       scale * (r_k - r_{k+1}) (last: scale * r_K): the sum telescopes to scale * r_1;
    clip_delta  clip, then delta: the sum is scale * min(r_1 - eta, 0).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


def clip_rewards(scores: Sequence[float], eta: float, scale: float = 1.0) -> list[float]:
    """Clip: scale * min(r_k - eta, 0) for each step value r_k."""
    return [scale * min(r - eta, 0.0) for r in scores]


def delta_rewards(scores: Sequence[float], scale: float = 1.0) -> list[float]:
    """Delta: scale * (r_k - r_{k+1}) for k < K and scale * r_K for the last step."""
    values = list(scores)
    return [scale * (r - nxt) for r, nxt in zip(values, values[1:] + [0.0], strict=True)]


def clip_delta_rewards(scores: Sequence[float], eta: float, scale: float = 1.0) -> list[float]:
    """Clip-Delta: Delta applied to the clipped values; the return from step t is scale * min(r_t - eta, 0)."""
    return delta_rewards(clip_rewards(scores, eta), scale)


REFINEMENTS: dict[str, Callable[[Sequence[float], float, float], list[float]]] = {  # mode -> (scores, eta, scale)
    "clip": clip_rewards,
    "delta": lambda scores, eta, scale: delta_rewards(scores, scale),
    "clip_delta": clip_delta_rewards,
}
