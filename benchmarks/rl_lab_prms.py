"""The GRPO lab's two PRMs (issue 32): a TD-target PRM and an MC-label PRM from one run of the prm_lab pipeline
(`benchmarks/prm_lab.py`: the same backbone, the same labelling compute), so `mix_td` against `mix_mc` compares
targets, not models. Built once under the lab's --work and copied (without the training checkpoint) to
benchmarks/results/rl_lab_prms/, committed with the runs they scored; a run's record names the pair by prm_lab kind
and weights digest. --quick builds its pair under --work and leaves it there.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from prm_train.export import CHECKPOINT
from tdrm_search.loading import LAB_POLICY

PRM_KINDS = {"td": "td0", "mc": "mc_soft"}  # prm_lab kinds: TD(0) targets, Monte-Carlo (Math-Shepherd) labels
PRM_PAIR_MINUTES = 45  # the backbone (~25 min) and prm_lab's stages for two kinds (~20 min), on 2 busy cores
BACKBONE = ["--layers", "4", "--heads", "4", "--steps", "2000"]  # the PRMs' backbone (prm_lab's committed runs)
HOME = Path(__file__).parent / "results" / "rl_lab_prms"  # the full lab's pair, committed


def prm_lab():
    """benchmarks/prm_lab.py as a module: it is a script that imports its sibling modules by their bare names."""
    here = str(Path(__file__).parent)
    if here not in sys.path:
        sys.path.append(here)
    import prm_lab

    return prm_lab


def script_env() -> dict[str, str]:
    """The environment for a benchmark script run as a file: the repository root on PYTHONPATH."""
    root = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}


def built_dirs(work: Path, quick: bool) -> dict[str, Path]:
    """prm_lab's run folders of the pair under `work` (its --quick adds a suffix)."""
    prm_work = work / ("prm_lab_quick" if quick else "prm_lab")
    return {k: prm_work / f"likelihood-{kind}-s0" for k, kind in PRM_KINDS.items()}


def pair_dirs(work: Path, quick: bool) -> dict[str, Path]:
    """Where the TD and MC PRMs are (or will be): HOME/td and HOME/mc; --quick: prm_lab's run folders."""
    return built_dirs(work, quick) if quick else {k: HOME / k for k in PRM_KINDS}


def prm_pair(work: Path, base: Path | None, quick: bool) -> dict[str, Path]:
    """The TD and MC PRMs: one prm_lab pipeline run (same backbone, same labelling compute), cached under `work`.
    The backbone: --prm-base, else the committed recipe (a 4-layer lab LM, 2000 steps); --quick: the shipped
    policy, and prm_lab's --quick sizes."""
    dirs = pair_dirs(work, quick)
    if all(prm_lab().trained(d) for d in dirs.values()):
        return dirs
    if base is None:
        base = LAB_POLICY if quick else work / "backbone4"
        if not quick and not (base / "model.safetensors").exists():
            trainer = Path(__file__).parent / "lab" / "train_policy.py"
            subprocess.run([sys.executable, str(trainer), "--out", str(base), *BACKBONE], check=True, env=script_env())
    script = Path(__file__).parent / "prm_lab.py"
    command = [sys.executable, str(script), "--base", str(base), "--work", str(work / "prm_lab")]
    command += ["--head", "likelihood", "--lr", "5e-4", "--kinds", *PRM_KINDS.values(), "--seeds", "0"]
    command += ["--search-problems", "0", "--results", str(dirs["td"].parent), "--name", "prms"]  # HOME/prms.json
    command += ["--quick"] if quick else ["--eval-problems", "300"]  # prm_lab's committed comparisons' evaluation
    subprocess.run(command, check=True, env=script_env())
    if not quick:
        for k, built in built_dirs(work, quick).items():
            shutil.rmtree(dirs[k], ignore_errors=True)
            shutil.copytree(built, dirs[k], ignore=shutil.ignore_patterns(CHECKPOINT))
    return dirs


def pair_ids(dirs: dict[str, Path]) -> dict[str, dict]:
    """The PRMs' identity for resume: prm_lab kind and weights digest (None until built), so runs scored by another
    build of the pair are never mixed with these, wherever the checkout is."""
    weights = {k: d / "model.safetensors" for k, d in dirs.items()}
    return {
        k: {"kind": PRM_KINDS[k], "sha256": hashlib.sha256(w.read_bytes()).hexdigest() if w.exists() else None}
        for k, w in weights.items()
    }
