"""Train a PRM: soft-label BCE from the read-out logits (step tags, or the value head's last token), batched,
seeded, resumable, with online re-targeting.

Bootstrapped targets (TD(0), n-step, TD(λ), tree TD(0)) are recomputed with the current model at the start of every
round (semi-gradient: values are read in inference mode). Round 0 has no trained model to bootstrap from, so it
bootstraps from the outcome (V(s_t) := z), i.e. starts from the discounted Monte-Carlo return (tree TD(0):
from the tree's own Monte-Carlo estimate).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from prm_train.config import TrainConfig
from prm_train.data import Rollout
from prm_train.export import CHECKPOINT, export
from prm_train.model import (
    Packed,
    check_tokenizer,
    encode_rollouts,
    load_backbone,
    packed_path,
    read_logits,
    rollout_values,
)
from prm_train.targets import TargetSpec, all_targets
from tdrm_search.devices import model_device
from tdrm_search.prms.config import PRMConfig
from tdrm_search.prms.heads import Head
from tdrm_search.prms.heads.likelihood import logit, step_least_logprobs


@dataclass
class TrainResult:
    losses: list[float]  # mean loss of each epoch, in order
    seconds: float
    steps: int


def round_targets(
    model,
    rollouts: Sequence[Rollout],
    packed: Sequence[Packed],
    readout: Head,
    pad: int,
    spec: TargetSpec,
    round_index: int,
) -> list[list[float]]:
    """Each rollout's targets, cut to the steps whose read-out fits the context."""
    values = None
    if spec.bootstraps and round_index > 0:
        values = rollout_values(model.eval(), packed, rollouts, readout, pad)
        model.train()
    elif spec.bootstraps and not spec.reads_tree:  # round 0 bootstraps from the outcome; tree TD(0) from tree MC
        values = [[float(r.outcome)] * len(r.steps) for r in rollouts]
    return [t[: len(p.ends)] for t, p in zip(all_targets(rollouts, spec, values), packed, strict=True)]


def fit(
    model,
    tokenizer,
    config: PRMConfig,
    rollouts: Sequence[Rollout],
    cfg: TrainConfig,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train `model` in place. With `run_dir`, a checkpoint is written after every epoch; `resume` continues
    from it and ends with the same weights an uninterrupted run would have."""
    if not rollouts:
        raise ValueError("no rollouts to train on")
    readout = check_tokenizer(model, tokenizer, config)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    max_len = min(cfg.max_len, model.config.max_position_embeddings)
    packed = encode_rollouts(tokenizer, config, rollouts, max_len)
    keep = [i for i, p in enumerate(packed) if p.ends]
    torch.manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    state = {"round": 0, "epoch": 0, "targets": None, "losses": [], "steps": 0}
    ckpt = Path(run_dir) / CHECKPOINT if run_dir else None
    if resume and ckpt and ckpt.exists():
        saved = torch.load(ckpt, weights_only=False, map_location=model_device(model))
        if saved["config"] != cfg.to_dict():
            raise ValueError(f"{ckpt} was written with a different training config; start a new run_dir")
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        state = saved["state"]
        log(f"resumed {ckpt} at round {state['round']} epoch {state['epoch']}")
    model.train()
    started = time.perf_counter()
    while state["round"] < cfg.rounds:
        if state["targets"] is None:
            state["targets"] = round_targets(model, rollouts, packed, readout, pad, cfg.targets, state["round"])
            if readout.learns_readout and state["steps"] == 0:
                calibrate(model, packed, state["targets"], keep, pad)
        loss = run_epoch(model, opt, packed, state["targets"], keep, cfg, state, readout, pad, progress)
        state["losses"].append(loss)
        state["epoch"] += 1
        log(
            f"round {state['round'] + 1}/{cfg.rounds} epoch {state['epoch']}/{cfg.epochs} loss {loss:.4f} "
            f"({time.perf_counter() - started:.0f}s)"
        )
        if state["epoch"] == cfg.epochs:
            state.update(round=state["round"] + 1, epoch=0, targets=None)
        if ckpt:
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            torch.save(
                {"model": model.state_dict(), "optimizer": opt.state_dict(), "state": state, "config": cfg.to_dict()},
                ckpt,
            )
    model.eval()
    return TrainResult(state["losses"], time.perf_counter() - started, state["steps"])


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


def run_epoch(
    model,
    opt,
    packed: Sequence[Packed],
    targets,
    keep,
    cfg: TrainConfig,
    state: dict,
    readout: Head,
    pad: int,
    progress: bool,
) -> float:
    """One shuffled pass (order fixed by seed, round and epoch); returns the mean batch loss."""
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + state["round"] * 1_009 + state["epoch"])
    order = [keep[i] for i in torch.randperm(len(keep), generator=gen).tolist()]
    batches = [order[i : i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
    total = 0.0
    bar = tqdm(
        batches, desc=f"round {state['round'] + 1} epoch {state['epoch'] + 1}", disable=not progress, leave=False
    )
    for batch in bar:
        logits = read_logits(model, [packed[i] for i in batch], readout, pad)
        y = torch.tensor([t for i in batch for t in targets[i]], device=logits.device)  # float32, as the loss
        loss = F.binary_cross_entropy_with_logits(logits.float(), y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        state["steps"] += 1
        total += loss.item()
        bar.set_postfix(loss=f"{loss.item():.4f}")
    return total / max(1, len(batches))


def train_prm(
    base: str | Path,
    rollouts: Sequence[Rollout],
    config: PRMConfig,
    cfg: TrainConfig,
    run_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    meta: dict | None = None,
    log: Callable[[str], None] = print,
    device: str = "auto",
    dtype: str = "auto",
) -> TrainResult:
    """Initialise from the causal LM at `base` on `device` in `dtype` ("auto": a CUDA GPU when present, else the
    CPU; bfloat16 on a GPU, float32 on the CPU), train, and leave `run_dir` an exported PRM (plus checkpoint)."""
    model, tokenizer = load_backbone(base, config, cfg.seed, device, dtype)
    placed = {"device": str(model_device(model)), "dtype": str(model.dtype).removeprefix("torch.")}
    meta = {"base": str(base), "rollouts": len(rollouts), "train": cfg.to_dict(), **placed, **(meta or {})}
    export(model, tokenizer, config, run_dir, meta)
    result = fit(model, tokenizer, config, rollouts, cfg, run_dir, resume, progress, log)
    meta.update(losses=result.losses, seconds=round(result.seconds, 1), steps=result.steps)
    export(model, tokenizer, config, run_dir, meta)
    return result
