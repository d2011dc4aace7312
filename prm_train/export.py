"""Write a trained PRM as a folder that `HFPRM(path)`, `VLLMPRM(path)` and `load_prm(path)` load directly:
Hugging Face model + tokenizer files (a value head is a `*ForSequenceClassification` folder that plain
`AutoModelForSequenceClassification` loads too), `tdrm_prm.json` (the read-out format), `training.json`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from transformers import AutoTokenizer

from prm_train.model import attach_readout
from tdrm_search.prms.config import PRMConfig
from tdrm_search.prms.heads import head_for

TRAINING_FILE = "training.json"
CHECKPOINT = "checkpoint.pt"  # a training run folder is an exported PRM plus this file


def export(model, tokenizer, config: PRMConfig, folder: str | Path, meta: dict | None = None) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = None
    readout = getattr(model, "likelihood_readout", None)
    if readout is not None:  # a plain causal-LM folder; the learned read-out goes to tdrm_prm.json
        config = dataclasses.replace(config, scale=readout.scale.item(), bias=readout.bias.item())
        state = {k: v for k, v in model.state_dict().items() if not k.startswith("likelihood_readout.")}
    model.save_pretrained(folder, safe_serialization=True, state_dict=state)
    tokenizer.save_pretrained(folder)
    config.save(folder)
    if meta is not None:
        (folder / TRAINING_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return folder


def export_checkpoint(run_dir: str | Path, folder: str | Path) -> Path:
    """Export the last checkpoint of a training run (`tdrm prm train --out RUN_DIR`), finished or not."""
    run_dir = Path(run_dir)
    ckpt = run_dir / CHECKPOINT
    if not ckpt.is_file():
        raise FileNotFoundError(f"{ckpt} not found: train with --out {run_dir} first")
    config, tokenizer = PRMConfig.load(run_dir), AutoTokenizer.from_pretrained(run_dir)
    model = attach_readout(head_for(config, tokenizer).load(run_dir, torch.float32), config)
    model.load_state_dict(torch.load(ckpt, weights_only=False)["model"])
    meta_file = run_dir / TRAINING_FILE
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else None
    return export(model, tokenizer, config, folder, meta)
