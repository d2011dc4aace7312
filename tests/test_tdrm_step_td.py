"""TDRM's in-step TD (target kinds tdrm_td0, tdrm_td2) against a reference written the way TDRM's trainers compute
their loss (tdrm/tdrm_1_step_train.py and tdrm/tdrm_2_step_train.py in THUDM/TDRM): one row per (state, next state)
pair, probabilities from the same network, the next state's detached, clamp(r + gamma * p') as the soft label, the
outcome at terminal rows weighted by terminal_weight, BCE through log(p + 1e-10), mean over rows."""

from __future__ import annotations

import pytest
import torch
from test_prm_model import lab_rollouts

from prm_train.model import Packed
from prm_train.objective import loss_terms, step_targets
from prm_train.targets import TargetSpec, rollout_targets, tdrm_targets


def reference_loss(q: list[torch.Tensor], outcomes, rewards, n: int, gamma: float, terminal_weight: float):
    """TDRM's compute_loss over the pairs cut from each rollout's step logits q[i] (length T): state1 = s_t; 1-step:
    state2 = s_{t+1}, reward r_t; 2-step: state3 = s_{t+2} (state3_mask 0 where it does not exist), reward_1 = r_t,
    reward_2 = r_{t+1}, the outcome as the reward past the last state; done = 1 on the terminal row."""
    state1, boot, label, r1, r2, mask, done = [], [], [], [], [], [], []
    for qi, z, r in zip(q, outcomes, rewards, strict=True):
        T = len(qi)
        rho = list(r) + [z]
        for t in range(T):
            state1.append(qi[t])
            j = t + n
            boot.append(qi[j] if j <= T - 1 else torch.zeros(()))
            mask.append(float(j <= T - 1))
            r1.append(rho[t] if t < T - 1 else 0.0)
            r2.append(rho[t + 1] if n == 2 and t + 1 <= T - 1 else 0.0)
            label.append(z)
            done.append(float(t == T - 1))
    state1_q, boot_q = torch.stack(state1), torch.stack(boot).detach()
    label, r1, r2, mask, done = (torch.tensor(x) for x in (label, r1, r2, mask, done))
    p1 = torch.sigmoid(state1_q)
    if n == 1:
        td = torch.clamp(r1 + gamma * torch.sigmoid(boot_q), min=0, max=1)
    else:
        td = torch.clamp(r1 + gamma * r2 + gamma**2 * torch.sigmoid(boot_q) * mask, min=0, max=1)
    loss = done * terminal_weight * (label * torch.log(p1 + 1e-10) + (1 - label) * torch.log(1 - p1 + 1e-10)) + (
        1 - done
    ) * (td * torch.log(p1 + 1e-10) + (1 - td) * torch.log(1 - p1 + 1e-10))
    return -torch.mean(loss)


def our_loss(logits: torch.Tensor, rollouts, spec: TargetSpec) -> torch.Tensor:
    """The trainer's micro-batch loss (prm_train.train.run_epoch, one process) on the same logits."""
    packed = [Packed([0] * len(r.steps), list(range(len(r.steps))), [0] * len(r.steps), [0] * len(r.steps),
                     list(range(len(r.steps)))) for r in rollouts]  # fmt: skip
    y, w = step_targets(logits, rollouts, packed, None, list(range(len(rollouts))), spec)
    counted = sum(sum(loss_terms(r, p, spec)[1]) for r, p in zip(rollouts, packed, strict=True))
    return (w * torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")).sum() / counted


@pytest.mark.parametrize("kind,n", [("tdrm_td0", 1), ("tdrm_td2", 2)])
@pytest.mark.parametrize("gamma,terminal_weight,step_reward", [(None, 1.0, 0.0), (0.9, 2.5, 0.05), (1.0, 0.0, -0.1)])
def test_loss_and_gradient_match_tdrms_trainer(kind, n, gamma, terminal_weight, step_reward):
    rollouts = lab_rollouts(7)  # 1-4 steps each, right and wrong
    spec = TargetSpec(kind, gamma=gamma, terminal_weight=terminal_weight, step_reward=step_reward)
    assert spec.gamma == (0.8 if gamma is None else gamma)  # TDRM's default discount
    torch.manual_seed(0)
    flat = (torch.randn(sum(len(r.steps) for r in rollouts)) * 2).requires_grad_(True)
    ours = our_loss(flat, rollouts, spec)
    (g_ours,) = torch.autograd.grad(ours, flat)
    q = list(torch.split(flat, [len(r.steps) for r in rollouts]))
    rewards = [[step_reward] * (len(r.steps) - 1) for r in rollouts]
    ref = reference_loss(q, [float(r.outcome) for r in rollouts], rewards, n, spec.gamma, terminal_weight)
    (g_ref,) = torch.autograd.grad(ref, flat)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(g_ours, g_ref, atol=1e-6, rtol=1e-4)  # semi-gradient: nothing through the targets


def test_targets_by_hand():
    v, z = [0.5, 0.25, 0.75, 0.6], 1.0
    assert tdrm_targets(v, z, 1, 0.8) == pytest.approx([0.8 * 0.25, 0.8 * 0.75, 0.8 * 0.6, 1.0])
    assert tdrm_targets(v, z, 2, 0.8) == pytest.approx([0.64 * 0.75, 0.64 * 0.6, 0.8 * 1.0, 1.0])
    assert tdrm_targets([0.3], 0.0, 2, 0.8) == [0.0]
    assert tdrm_targets(v, 0.0, 1, 0.8, [0.5, 0.5, 0.5]) == pytest.approx([0.7, 1.0, 0.98, 0.0])  # clamped
    rollout = lab_rollouts(2)[1]
    values = [0.5] * len(rollout.steps)
    assert rollout_targets(rollout, TargetSpec("tdrm_td0"), values) == tdrm_targets(values, rollout.outcome, 1, 0.8)
    with pytest.raises(ValueError, match="computed in each training step"):
        rollout_targets(rollout, TargetSpec("tdrm_td2"))
    with pytest.raises(ValueError, match="terminal_weight"):
        TargetSpec("tdrm_td0", terminal_weight=-1)
    assert TargetSpec("td0").gamma == 1.0  # the other kinds keep their discount of 1


def test_a_cut_bootstrap_state_drops_the_step():
    """A rollout cut by the context: a step whose s_{t+n} was never read leaves the loss (s_{T-2}'s 2-step return
    reads the outcome, no state); the terminal step was not read, so no terminal weight."""
    rollout = max(lab_rollouts(12), key=lambda r: len(r.steps))
    T = len(rollout.steps)
    assert T >= 4
    cut = Packed([0] * 3, [0, 1, 2], [0] * 3, [0] * 3, [0, 1, 2])  # 3 of T steps read
    weights, counted = loss_terms(rollout, cut, TargetSpec("tdrm_td2", terminal_weight=3.0))
    assert weights == counted == [1.0, 0.0, float(T == 4)]  # s_2 needs V(s_4) unless T = 4: then it reads z
