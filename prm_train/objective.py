"""What each training step fits: a round's targets (read with the current model, each process scoring its shard),
the likelihood head's calibration to the first of them, and a micro-batch's targets and loss weights (TDRM's in-step
kinds compute theirs from the step's own logits, detached). `prm_train.train` runs the loop around them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from prm_train.data import Rollout
from prm_train.model import Packed, packed_path, rollout_values
from prm_train.targets import IN_STEP, TargetSpec, all_targets, tdrm_targets
from tdrm_search.prms.encoding import pad_values
from tdrm_search.prms.heads import Head
from tdrm_search.prms.heads.likelihood import logit, step_least_logprobs


def round_targets(
    model,
    rollouts: Sequence[Rollout],
    packed: Sequence[Packed],
    readout: Head,
    pad: int,
    spec: TargetSpec,
    round_index: int,
    accelerator=None,
) -> list[list[float]] | None:
    """Each rollout's targets, cut to the steps whose read-out fits the context (None for the in-step kinds). With
    `accelerator`, `model` is the prepared `ReadOut` and each process scores its shard."""
    if spec.in_step:
        return None
    values = None
    if spec.bootstraps and round_index > 0:
        if accelerator is None:
            values = rollout_values(model.eval(), packed, rollouts, readout, pad)
        else:
            values = shard_values(model.eval(), packed, rollouts, accelerator)
        model.train()
    elif spec.bootstraps and not spec.reads_tree:  # round 0 bootstraps from the outcome; tree TD(0) from tree MC
        values = [[float(r.outcome)] * len(r.steps) for r in rollouts]
    return [t[: len(p.ends)] for t, p in zip(all_targets(rollouts, spec, values), packed, strict=True)]


@torch.no_grad()
def shard_values(net, packed: Sequence[Packed], rollouts: Sequence[Rollout], accelerator, batch_size: int = 64):
    """Every step value of every rollout: process p scores rollouts p, p + P, ... (padded with a repeat so every
    process runs the same forwards, as ZeRO-3 and FSDP need), then the shards are gathered."""
    from accelerate.utils import gather_object

    rank, world = accelerator.process_index, accelerator.num_processes
    readable = [i for i, p in enumerate(packed) if p.ends]
    per = -(-len(readable) // world)
    mine = readable[rank::world] or readable[:1]
    mine = sorted(mine + mine[:1] * (per - len(mine)), key=lambda i: len(packed[i].ids))
    values: dict[int, list[float]] = {}
    for c in range(0, len(mine), batch_size):
        chunk = mine[c : c + batch_size]
        flat = torch.sigmoid(net([packed[i] for i in chunk]).float()).tolist()
        for i in chunk:
            values[i], flat = flat[: len(packed[i].ends)], flat[len(packed[i].ends) :]
    if world > 1:
        for part in gather_object([values]):
            values.update(part)
    return [pad_values(values.get(i, []), len(r.steps)) for i, r in enumerate(rollouts)]


@torch.no_grad()
def calibrate(model, packed: Sequence[Packed], targets, keep, pad: int, batch_size: int = 64) -> None:
    """Fit the likelihood head's (scale, bias) (its `learns_readout`) to the first targets with the LM fixed, so that
    training the LM starts from calibrated values instead of spending its first steps (and the backbone's knowledge)
    on them."""
    readout = model.likelihood_readout
    was_training = model.training
    model.eval()
    feats = torch.cat(
        [
            torch.cat(step_least_logprobs(model, [packed_path(packed[i]) for i in keep[c : c + batch_size]], pad))
            for c in range(0, len(keep), batch_size)
        ]
    )
    y = torch.tensor([t for i in keep for t in targets[i]], dtype=feats.dtype, device=feats.device)
    opt = torch.optim.LBFGS(readout.parameters(), lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        with torch.enable_grad():
            loss = F.binary_cross_entropy_with_logits(logit(readout, feats), y)
            loss.backward()
        return loss

    opt.step(closure)
    model.train(was_training)


def loss_terms(rollout: Rollout, packed: Packed, spec: TargetSpec) -> tuple[list[float], list[float]]:
    """Each read step's loss weight and whether it counts in the mean. The in-step kinds weight the terminal step
    by `terminal_weight` (it still counts once, as in TDRM's mean) and drop a step whose bootstrap state was cut by
    the context."""
    K = len(packed.ends)
    if not spec.in_step:
        return [1.0] * K, [1.0] * K
    T, n = len(rollout.steps), IN_STEP[spec.kind]
    counted = [float(t == T - 1 or t + n > T - 1 or t + n < K) for t in range(K)]
    weights = [c * (spec.terminal_weight if t == T - 1 else 1.0) for t, c in enumerate(counted)]
    return weights, counted


def step_targets(logits, rollouts, packed, targets, rows, spec: TargetSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """The targets and loss weights of a micro-batch's read steps: the round's targets, or (in-step kinds) TDRM's
    TD targets from these very logits, detached."""
    ys, ws = [], []
    values: list[float] = torch.sigmoid(logits.detach()).tolist() if spec.in_step else []
    assert spec.gamma is not None  # TargetSpec fills in the kind's discount
    for r, p, i in zip(rollouts, packed, rows, strict=True):
        K = len(p.ends)
        if spec.in_step:
            own, values = values[:K], values[K:]
            full = own + [0.0] * (len(r.steps) - K)  # past the context: never read (loss_terms drops them)
            n = IN_STEP[spec.kind]
            ys += tdrm_targets(full, float(r.outcome), n, spec.gamma, [spec.step_reward] * (len(r.steps) - 1))[:K]
        else:
            ys += targets[i]
        ws += loss_terms(r, p, spec)[0]
    return torch.tensor(ys, device=logits.device), torch.tensor(ws, device=logits.device)
