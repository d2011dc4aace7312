"""Step targets for PRM training: pure functions of one rollout (and, where they bootstrap, its values).

Notation (0-based, see docs/method.md): a rollout has steps 0..T-1; s_t is the state after step t; s_{T-1} is
terminal and z ∈ {0, 1} its verifiable outcome. `values[t]` = V(s_t) from the current model (never
differentiated); `rewards[t]` = r_t, the shaped reward of the transition s_t → s_{t+1} (t < T-1, default 0).
Bootstrapping reads B_j = V(s_j) for j < T-1 and B_{T-1} = z: a return that reaches the end stops at the
outcome. Every target is clipped to [0, 1] after it is computed.

  outcome      y_t = z
  exact        y_t = the task's exact step label (1 while every step so far is right): the ceiling, where a
               checker exists (the lab); not a labelling method a real dataset has
  MC (hard)    y_t = 1 if any of m completions from s_t succeeds else 0;   y_{T-1} = z
  MC (soft)    y_t = successes / m;                                        y_{T-1} = z
  n-step       y_t = Σ_{k<m} γ^k r_{t+k} + γ^m B_{t+m},   m = min(n, T-1-t);   y_{T-1} = z
  TD(0)        n-step with n = 1: y_t = r_t + γ B_{t+1}
  TD(λ)        y_t = (1-λ) Σ_{n=1}^{N-1} λ^{n-1} G_t^(n) + λ^{N-1} G_t^(N),  N = T-1-t  (tail on the full return)
               computed backwards: G_t = r_t + γ [(1-λ) B_{t+1} + λ G_{t+1}],  G_{T-1} = z

Over a search tree (rollouts cut from one tree by `prm_train.collect`, sharing the nodes of common prefixes):

  tree MC      y(u) = share of correct finished leaves below u (a finished leaf: its outcome); free, no extra
               completions
  tree TD(0)   y(u) = r + γ · mean over u's children c of B(c), B(c) = z_c at a finished leaf, else V(c);
               a finished leaf gets z. Round 0 (no model yet) bootstraps from tree MC.

TDRM's own schedule (tdrm/tdrm_{1,2}_step_train.py in THUDM/TDRM): semi-gradient TD computed inside every training
step from the same network's current values (no rounds), γ = 0.8 by default, the terminal step's loss weighted by
`terminal_weight`. With ρ_k = r_k for k < T-1 and ρ_{T-1} = z (the outcome is the reward past the last state):

  tdrm_td0     y_t = r_t + γ V(s_{t+1})                        (t < T-1; V(s_{T-1}) is the network's too)
  tdrm_td2     y_t = ρ_t + γ ρ_{t+1} + γ² V(s_{t+2})           (the V term only where s_{t+2} exists: at t = T-2,
                                                                y = r_{T-2} + γ z, TDRM's state3_mask = 0)
  both         y_{T-1} = z, weight `terminal_weight`; V = sigmoid(logit) of this step's forward pass, detached
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from prm_train.data import Rollout
from tdrm_search.tree import ROOT, Tree

KINDS = ("outcome", "exact", "mc_hard", "mc_soft", "td0", "nstep", "td_lambda", "tree_mc", "tree_td0")
IN_STEP = {"tdrm_td0": 1, "tdrm_td2": 2}  # TDRM's in-step TD: kind -> steps looked ahead
KINDS += tuple(IN_STEP)
BOOTSTRAPPED = ("td0", "nstep", "td_lambda", "tree_td0")
TREE_KINDS = ("tree_mc", "tree_td0")
TDRM_GAMMA = 0.8


def clip01(x: float) -> float:
    return min(1.0, max(0.0, x))


def _check(values: Sequence[float] | None, rewards: Sequence[float] | None, T: int, gamma: float) -> list[float]:
    if T < 1:
        raise ValueError("a rollout needs at least one step")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1], got {gamma}")
    if values is not None:
        if len(values) != T:
            raise ValueError(f"{len(values)} values for {T} steps")
        if any(not 0.0 <= v <= 1.0 for v in values):
            raise ValueError(f"values must lie in [0, 1], got {list(values)}")
    if rewards is None:
        return [0.0] * (T - 1)
    if len(rewards) != T - 1:
        raise ValueError(f"{len(rewards)} rewards for {T - 1} transitions")
    return list(rewards)


def _bootstrap(values: Sequence[float], outcome: float) -> list[float]:
    """B_j: the model's value before the end, the outcome at the terminal state."""
    return list(values[:-1]) + [outcome]


def outcome_targets(T: int, outcome: float) -> list[float]:
    _check(None, None, T, 1.0)
    return [clip01(outcome)] * T


def mc_targets(successes: Sequence[int], samples: int, outcome: float, hard: bool) -> list[float]:
    """Math-Shepherd labels from `samples` completions per non-terminal prefix; the terminal step gets z."""
    if samples < 1 or any(not 0 <= s <= samples for s in successes):
        raise ValueError(f"MC counts {list(successes)} must lie in [0, {samples}] with samples >= 1")
    labels = [float(s > 0) if hard else s / samples for s in successes]
    return labels + [clip01(outcome)]


def n_step_targets(
    values: Sequence[float], outcome: float, n: int, gamma: float, rewards: Sequence[float] | None = None
) -> list[float]:
    T = len(values)
    r = _check(values, rewards, T, gamma)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    B = _bootstrap(values, outcome)
    out = []
    for t in range(T - 1):
        m = min(n, T - 1 - t)
        ret = sum(gamma**k * r[t + k] for k in range(m)) + gamma**m * B[t + m]
        out.append(clip01(ret))
    return out + [clip01(outcome)]


def td0_targets(
    values: Sequence[float], outcome: float, gamma: float, rewards: Sequence[float] | None = None
) -> list[float]:
    return n_step_targets(values, outcome, 1, gamma, rewards)


def td_lambda_targets(
    values: Sequence[float], outcome: float, gamma: float, lam: float, rewards: Sequence[float] | None = None
) -> list[float]:
    T = len(values)
    r = _check(values, rewards, T, gamma)
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lambda must lie in [0, 1], got {lam}")
    B = _bootstrap(values, outcome)
    G = [0.0] * T
    G[T - 1] = outcome
    for t in range(T - 2, -1, -1):
        G[t] = r[t] + gamma * ((1 - lam) * B[t + 1] + lam * G[t + 1])
    return [clip01(g) for g in G]


def tdrm_targets(
    values: Sequence[float], outcome: float, n: int, gamma: float, rewards: Sequence[float] | None = None
) -> list[float]:
    """TDRM's in-step n-step TD targets (n = 1 or 2 in its trainers) of every step from the network's current
    `values` (V(s_0..s_{T-1}), read in the same training step); the terminal step gets z."""
    T = len(values)
    r = _check(values, rewards, T, gamma)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rho = r + [float(outcome)]  # ρ: the shaped rewards, then the outcome past the last state
    out = []
    for t in range(T - 1):
        ret = sum(gamma**k * rho[t + k] for k in range(min(n, T - t)))
        if t + n <= T - 1:
            ret += gamma**n * values[t + n]
        out.append(clip01(ret))
    return out + [clip01(outcome)]


@dataclass(frozen=True)
class TargetSpec:
    """Which targets to train on. `step_reward` is a constant shaped reward r_t on every transition."""

    kind: str = field(default="td_lambda", metadata={"choices": KINDS, "help": "target kind (docs/method.md §1)"})
    gamma: float | None = field(default=None, metadata={"help": "discount (none: 0.8 for tdrm_*, TDRM's; else 1)"})
    lam: float = field(default=0.7, metadata={"help": "TD(lambda)'s lambda"})
    n: int = field(default=3, metadata={"flag": "--n-step", "help": "n of n-step targets"})
    step_reward: float = field(default=0.0, metadata={"help": "shaped reward r_t of every transition"})
    terminal_weight: float = field(default=1.0, metadata={"help": "loss weight of the terminal step (tdrm_* kinds)"})

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown target kind {self.kind!r}; choose one of {list(KINDS)}")
        if self.gamma is None:
            object.__setattr__(self, "gamma", TDRM_GAMMA if self.in_step else 1.0)
        if self.terminal_weight < 0:
            raise ValueError(f"terminal_weight must be >= 0, got {self.terminal_weight}")

    @property
    def in_step(self) -> bool:
        """Targets computed inside every training step from the network being trained (TDRM's schedule)."""
        return self.kind in IN_STEP

    @property
    def bootstraps(self) -> bool:
        return self.kind in BOOTSTRAPPED

    @property
    def reads_tree(self) -> bool:
        return self.kind in TREE_KINDS


def rollout_targets(rollout: Rollout, spec: TargetSpec, values: Sequence[float] | None = None) -> list[float]:
    """The targets of every step of `rollout`; bootstrapped kinds need the current model's `values`."""
    T, z = len(rollout.steps), float(rollout.outcome)
    if spec.kind == "outcome":
        return outcome_targets(T, z)
    if spec.kind == "exact":
        if rollout.labels is None:
            raise ValueError(f"rollout of {rollout.name!r} has no exact step labels (only tasks with a checker do)")
        return [float(x) for x in rollout.labels]
    if spec.kind in ("mc_hard", "mc_soft"):
        if rollout.mc_success is None:
            raise ValueError(f"rollout of {rollout.name!r} has no MC completions; collect with mc_samples > 0")
        return mc_targets(rollout.mc_success, rollout.mc_samples, z, hard=spec.kind == "mc_hard")
    if spec.reads_tree:
        raise ValueError(f"{spec.kind} targets read the whole tree: use all_targets")
    if values is None:
        if spec.in_step:
            raise ValueError(f"{spec.kind} targets are computed in each training step from its values: pass values")
        raise ValueError(f"{spec.kind} targets bootstrap from a value function: pass values")
    rewards = [spec.step_reward] * (T - 1)
    if spec.in_step:
        return tdrm_targets(values, z, IN_STEP[spec.kind], spec.gamma, rewards)
    if spec.kind == "td_lambda":
        return td_lambda_targets(values, z, spec.gamma, spec.lam, rewards)
    return n_step_targets(values, z, 1 if spec.kind == "td0" else spec.n, spec.gamma, rewards)


Children = Mapping[int, Sequence[int]]


def tree_mc_values(children: Children, outcomes: Mapping[int, float], root: int) -> dict[int, float]:
    """Share of correct finished leaves below every node under `root` (a finished leaf: its outcome).
    Every childless node must be a finished leaf."""
    out: dict[int, float] = {}

    def visit(u: int) -> tuple[float, int]:
        if u in outcomes:
            out[u] = float(outcomes[u])
            return out[u], 1
        kids = [visit(c) for c in children.get(u, ())]
        if not kids:
            raise ValueError(f"node {u} has no children and no outcome")
        wins, leaves = sum(w for w, _ in kids), sum(n for _, n in kids)
        out[u] = wins / leaves
        return wins, leaves

    visit(root)
    return out


def tree_td0_targets(
    children: Children, outcomes: Mapping[int, float], values: Mapping[int, float], gamma: float, reward: float = 0.0
) -> dict[int, float]:
    """y(u) = r + γ · mean over children c of B(c) (B = outcome at a finished leaf, else V(c)); finished leaf: z."""
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1], got {gamma}")
    out = {u: clip01(z) for u, z in outcomes.items()}
    for u, kids in children.items():
        if u in outcomes:
            raise ValueError(f"finished leaf {u} has children")
        boot = [float(outcomes[c]) if c in outcomes else values[c] for c in kids]
        out[u] = clip01(reward + gamma * sum(boot) / len(boot))
    return out


def rollout_tree(rollouts: Sequence[Rollout]) -> tuple[Tree, list[int]]:
    """The search tree the rollouts of one tree were cut from, as a `Tree` again (a rollout file keeps paths, not
    trees): one node per distinct node id, with its step text and finished leaves ended (token ids are not kept), and
    each tree node's id in the rollouts (-1 for the root, the prompt, which has no step of its own)."""
    tree = Tree.new(rollouts[0].problem, [])
    ids, node_of = [-1], {-1: ROOT}
    for r in rollouts:
        parent = ROOT
        for u, text in zip(r.nodes, r.steps, strict=True):
            if u not in node_of:
                node_of[u] = tree.add(parent, [], text)
                ids.append(u)
            parent = node_of[u]
        tree.end(parent, r.finish, None)
    return tree, ids


def tree_structure(rollouts: Sequence[Rollout]) -> tuple[dict[int, list[int]], dict[int, float]]:
    """The children of every node and the outcome of every finished leaf, by node id, from the rollouts of one tree:
    `rollout_tree`'s children."""
    tree, ids = rollout_tree(rollouts)
    outcomes = {r.nodes[-1]: float(r.outcome) for r in rollouts}
    children = {ids[u]: [ids[c] for c in n.children] for u, n in enumerate(tree.nodes) if n.children}
    return {u: kids for u, kids in children.items() if u not in outcomes}, outcomes


def tree_targets(
    rollouts: Sequence[Rollout], spec: TargetSpec, values: Sequence[Sequence[float]] | None
) -> list[list[float]]:
    """Tree MC or tree TD(0) targets of every step, rollouts grouped by their tree."""
    trees: dict[int, list[int]] = defaultdict(list)
    for i, r in enumerate(rollouts):
        if r.nodes is None:
            raise ValueError(f"{spec.kind} targets read a search tree; rollout of {r.name!r} has none")
        trees[r.tree].append(i)
    out: list[list[float]] = [[] for _ in rollouts]
    for members in trees.values():
        group = [rollouts[i] for i in members]
        children, outcomes = tree_structure(group)
        node_y = tree_mc_values(children, outcomes, -1)
        if spec.kind == "tree_td0":
            if values is not None:
                node_y = {u: v for i in members for u, v in zip(rollouts[i].nodes, values[i], strict=True)}
            node_y = tree_td0_targets(children, outcomes, node_y, spec.gamma, spec.step_reward)
        for i in members:
            out[i] = [node_y[u] for u in rollouts[i].nodes]
    return out


def all_targets(
    rollouts: Sequence[Rollout], spec: TargetSpec, values: Sequence[Sequence[float]] | None = None
) -> list[list[float]]:
    """The targets of every rollout; bootstrapped path kinds need `values`, tree TD(0) takes them when it has them."""
    if spec.reads_tree:
        return tree_targets(rollouts, spec, values)
    per_rollout = values if values is not None else [None] * len(rollouts)
    return [rollout_targets(r, spec, v) for r, v in zip(rollouts, per_rollout, strict=True)]
