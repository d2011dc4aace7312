"""Train a PRM: soft-label BCE from the read-out logits (step tags, or the value head's last token), batched,
seeded, resumable, with online re-targeting, under `accelerate` (one process, or `accelerate launch`: data parallel,
DeepSpeed ZeRO or FSDP from accelerate's own config file; mixed precision; gradient accumulation).

Bootstrapped targets (TD(0), n-step, TD(λ), tree TD(0)) are recomputed with the current model at the start of every
round (semi-gradient: values are read in inference mode). Round 0 has no trained model to bootstrap from, so it
bootstraps from the outcome (V(s_t) := z), i.e. starts from the discounted Monte-Carlo return (tree TD(0):
from the tree's own Monte-Carlo estimate). TDRM's in-step kinds (tdrm_td0, tdrm_td2) compute their targets inside
every step from the logits of that step's own forward pass, detached (`prm_train.targets.tdrm_targets`). What each
step fits (round targets, calibration, a micro-batch's targets and weights) is `prm_train.objective`; this module is
the loop, the accelerator and the checkpoint.

Processes (P of them): a step's global batch is `batch_size` rollouts whatever P is; process p takes rollouts
p, p + P, ... of it, cut into `grad_accum` micro-batches. A micro-batch's loss is its weighted BCE summed over its
steps divided by the global batch's step count (times P x grad_accum, which accelerate's averaging divides out), so
every optimiser step follows the global batch's mean loss: P processes match one up to float rounding. Round
targets: each process scores its shard (rollouts p, p + P, ..., padded to equal forwards) and the shards are
gathered, so every process holds the whole list (it is in the checkpoint too). The main process writes the
checkpoint after every epoch and the PRM folder; every process resumes from the same checkpoint.
"""

from __future__ import annotations

import os
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
from prm_train.model import Packed, add_lora, check_tokenizer, encode_rollouts, load_backbone, read_logits
from prm_train.objective import calibrate, loss_terms, round_targets, step_targets
from tdrm_search.devices import model_device, placement
from tdrm_search.prms.config import PRMConfig
from tdrm_search.prms.heads import Head

SHARDED_STATE = "accelerate_state"  # DeepSpeed / FSDP: accelerate's own sharded checkpoint, beside CHECKPOINT


@dataclass
class TrainResult:
    losses: list[float]  # mean loss of each epoch, in order
    seconds: float
    steps: int
    tokens: int = 0  # tokens read by the training forwards of this call, all processes together
    full_state: dict | None = None  # DeepSpeed / FSDP only: the model's whole state dict, gathered (main process)


class ReadOut(torch.nn.Module):
    """The model and its head's read-out as one module, so that accelerate's wrappers (DDP, DeepSpeed, FSDP,
    autocast) see every forward: packed rollouts in, read-out logits out."""

    def __init__(self, model, readout: Head, pad: int):
        super().__init__()
        self.model, self.readout, self.pad = model, readout, pad

    def forward(self, packed: Sequence[Packed]) -> torch.Tensor:
        return read_logits(self.model, packed, self.readout, self.pad)


def make_accelerator(cfg: TrainConfig, device: torch.device):
    """The accelerate `Accelerator` for `cfg` on `device` (a launch's config and environment fill in the rest)."""
    from accelerate import Accelerator, PartialState
    from accelerate.state import AcceleratorState

    state = PartialState._shared_state
    if state and state.get("num_processes", 1) == 1:  # one process: each fit picks its own device and precision
        AcceleratorState._reset_state(reset_partial_state=True)
    precision = None if cfg.mixed_precision == "auto" else cfg.mixed_precision
    return Accelerator(cpu=device.type == "cpu", mixed_precision=precision, gradient_accumulation_steps=cfg.grad_accum)


def sharded(accelerator) -> bool:
    """Whether the model or optimizer state lives in shards (DeepSpeed, FSDP): accelerate then checkpoints it."""
    return accelerator.distributed_type.name in ("DEEPSPEED", "FSDP")


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
    accelerator=None,
) -> TrainResult:
    """Train `model` in place (one process, or each process of an `accelerate launch` with its own copy). With
    `run_dir`, a checkpoint is written after every epoch; `resume` continues from it and ends with the same weights
    an uninterrupted run would have."""
    if not rollouts:
        raise ValueError("no rollouts to train on")
    acc = accelerator or make_accelerator(cfg, model_device(model))
    say = log if acc.is_main_process else lambda _: None
    readout = check_tokenizer(model, tokenizer, config)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    max_len = min(cfg.max_len, model.config.max_position_embeddings)
    packed = encode_rollouts(tokenizer, config, rollouts, max_len)
    keep = [i for i, p in enumerate(packed) if p.ends]
    if cfg.grad_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    torch.manual_seed(cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]  # LoRA: the adapters and the read-out
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    state = {"round": 0, "epoch": 0, "targets": None, "losses": [], "steps": 0}
    ckpt = Path(run_dir) / CHECKPOINT if run_dir else None
    resuming = bool(resume and ckpt and ckpt.exists())
    if resuming:
        saved = torch.load(ckpt, weights_only=False, map_location=model_device(model))
        if saved["config"] != cfg.to_dict():
            raise ValueError(f"{ckpt} was written with a different training config; start a new run_dir")
        state = saved["state"]
        if not sharded(acc):
            model.load_state_dict(saved["model"])
            opt.load_state_dict(saved["optimizer"])
    net, opt = acc.prepare(ReadOut(model, readout, pad), opt)
    if resuming:
        if sharded(acc):
            acc.load_state(str(Path(run_dir) / SHARDED_STATE))
        say(f"resumed {ckpt} at round {state['round']} epoch {state['epoch']}")
    net.train()
    started, tokens = time.perf_counter(), 0
    while state["round"] < cfg.rounds:
        if state["targets"] is None and not cfg.targets.in_step:
            state["targets"] = round_targets(net, rollouts, packed, readout, pad, cfg.targets, state["round"], acc)
            if readout.learns_readout and state["steps"] == 0:
                calibrate(model, packed, state["targets"], keep, pad)
        loss, read = run_epoch(net, opt, acc, rollouts, packed, state["targets"], keep, cfg, state, progress)
        tokens += read
        state["losses"].append(loss)
        state["epoch"] += 1
        say(
            f"round {state['round'] + 1}/{cfg.rounds} epoch {state['epoch']}/{cfg.epochs} loss {loss:.4f} "
            f"({time.perf_counter() - started:.0f}s)"
        )
        if state["epoch"] == cfg.epochs:
            state.update(round=state["round"] + 1, epoch=0, targets=None)
        if ckpt:
            save_checkpoint(acc, net, opt, state, cfg, ckpt)
    net.eval()
    full = None
    if sharded(acc):
        full = {k.removeprefix("model."): v for k, v in acc.get_state_dict(net).items()}
    acc.wait_for_everyone()
    return TrainResult(state["losses"], time.perf_counter() - started, state["steps"], tokens, full)


def save_checkpoint(acc, net, opt, state: dict, cfg: TrainConfig, ckpt: Path) -> None:
    """The main process writes model, optimizer, state and config (to a temporary file, then renamed, so a kill
    never leaves half a checkpoint); DeepSpeed / FSDP state goes through accelerate's `save_state` beside it."""
    if sharded(acc):
        acc.save_state(str(ckpt.parent / SHARDED_STATE))
    if acc.is_main_process:
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        model = acc.unwrap_model(net).model
        saved = {"state": state, "config": cfg.to_dict()}
        if not sharded(acc):
            saved |= {"model": model.state_dict(), "optimizer": opt.state_dict()}
        torch.save(saved, ckpt.with_suffix(".tmp"))
        os.replace(ckpt.with_suffix(".tmp"), ckpt)
    acc.wait_for_everyone()


def run_epoch(
    net, opt, acc, rollouts, packed: Sequence[Packed], targets, keep, cfg: TrainConfig, state: dict, progress: bool
) -> tuple[float, int]:
    """One shuffled pass (order fixed by seed, round and epoch, the same in every process); returns the mean batch
    loss (all processes) and the tokens read."""
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + state["round"] * 1_009 + state["epoch"])
    order = [keep[i] for i in torch.randperm(len(keep), generator=gen).tolist()]
    batches = [order[i : i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
    rank, world, parts = acc.process_index, acc.num_processes, cfg.grad_accum
    spec, total, tokens = cfg.targets, 0.0, 0
    desc = f"round {state['round'] + 1} epoch {state['epoch'] + 1}"
    bar = tqdm(batches, desc=desc, disable=not (progress and acc.is_main_process), leave=False)
    for batch in bar:
        counted = sum(sum(loss_terms(rollouts[i], packed[i], spec)[1]) for i in batch)
        share = batch[rank::world]
        for part in range(parts):
            micro = share[part::parts]
            with acc.accumulate(net):  # a process with nothing to read runs one rollout at weight 0 (DDP syncs)
                rows = micro or batch[:1]
                logits = net([packed[i] for i in rows]).float()
                y, w = step_targets(logits, [rollouts[i] for i in rows], [packed[i] for i in rows], targets, rows, spec)
                loss = (w * F.binary_cross_entropy_with_logits(logits, y, reduction="none")).sum() / counted
                loss = loss * (1.0 if micro else 0.0)
                acc.backward(loss * world * parts)
                if acc.sync_gradients:
                    acc.clip_grad_norm_(net.parameters(), 1.0)
                opt.step()
                opt.zero_grad()
            total += loss.item()
            tokens += sum(len(packed[i].ids) for i in micro)
        state["steps"] += 1
        bar.set_postfix(loss=f"{loss.item():.4f}")
    if world > 1:
        total, tokens = acc.reduce(torch.tensor([total, float(tokens)], device=acc.device), "sum").tolist()
    return total / max(1, len(batches)), int(tokens)


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
    CPU; bfloat16 on a GPU, float32 on the CPU; float32 weights when accelerate's mixed precision is on), train
    (under `accelerate launch`: every process), and leave `run_dir` an exported PRM (plus checkpoint)."""
    where, precision = placement(device, dtype)
    acc = make_accelerator(cfg, where)
    if acc.mixed_precision != "no" and dtype == "auto":
        precision = torch.float32  # autocast computes in bf16 / fp16 from float32 master weights
    where = acc.device if where.type == "cuda" else where  # each process's own GPU under a launch
    model, tokenizer = load_backbone(base, config, cfg.seed, str(where), precision)
    placed = {"device": str(model_device(model)), "dtype": str(model.dtype).removeprefix("torch.")}
    placed |= {"processes": acc.num_processes, "mixed_precision": acc.mixed_precision}
    meta = {"base": str(base), "rollouts": len(rollouts), "train": cfg.to_dict(), **placed, **(meta or {})}
    if acc.is_main_process:
        export(model, tokenizer, config, run_dir, meta)
    lora = add_lora(model, config, cfg.lora_r, cfg.lora_alpha) if cfg.lora_r else None
    result = fit(model, tokenizer, config, rollouts, cfg, run_dir, resume, progress, log, acc)
    meta.update(losses=result.losses, seconds=round(result.seconds, 1), steps=result.steps, tokens=result.tokens)
    if lora is not None:
        model = lora.merge_and_unload()  # a plain model folder: the adapters merged into the weights
    if acc.is_main_process:
        export(model, tokenizer, config, run_dir, meta)
        if result.full_state is not None:  # ZeRO-3 / FSDP: the weights gathered from the shards (untested here)
            model.save_pretrained(run_dir, safe_serialization=True, state_dict=result.full_state)
    acc.wait_for_everyone()
    return result
