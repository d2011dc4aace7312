"""CLI flags generated from config dataclasses: defaults and help from the fields, types parsed, bad values refused."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest

from rl_bridge.reward import RewardConfig
from tdrm_search.config_args import add_config_args, config_from_args


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(exit_on_error=False)
    add_config_args(p, RewardConfig)
    return p


def test_defaults_are_the_dataclass_defaults_and_flags_parse_to_its_types():
    assert config_from_args(RewardConfig, parser().parse_args([])) == RewardConfig()
    args = parser().parse_args(["--mode", "clip", "--eta", "0.25", "--drop-answer-step", "--grade-timeout-s", "none"])
    assert config_from_args(RewardConfig, args) == dataclasses.replace(
        RewardConfig(), mode="clip", eta=0.25, drop_answer_step=True, grade_timeout_s=None
    )
    assert "clip threshold (default: 0.5)" in parser().format_help()


def test_bad_values_are_refused_by_the_parser_or_the_config():
    with pytest.raises(argparse.ArgumentError):
        parser().parse_args(["--mode", "sum"])  # choices come from the field
    with pytest.raises(argparse.ArgumentError):
        parser().parse_args(["--eta", "high"])
    with pytest.raises(ValueError, match="weight must lie in"):
        config_from_args(RewardConfig, parser().parse_args(["--weight", "2"]))


def test_prm_train_flags_build_the_train_config():
    from prm_train.config import TrainConfig
    from prm_train.targets import TargetSpec
    from tdrm_search.cli import build_parser

    flags = [
        "prm",
        "train",
        "r.jsonl",
        "--out",
        "o",
        "--kind",
        "nstep",
        "--n-step",
        "2",
        "--lr",
        "1e-3",
        "--epochs",
        "1",
    ]
    args = build_parser().parse_args(flags)
    cfg = config_from_args(TrainConfig, args, targets=config_from_args(TargetSpec, args))
    assert cfg == TrainConfig(TargetSpec("nstep", n=2), lr=1e-3, epochs=1)


@pytest.mark.parametrize("head", ["value", "likelihood"])
def test_prm_train_head_from_the_command_line(tmp_path, head):
    """`tdrm prm train --head HEAD` as a user runs it: a folder the engine loads, scoring every step."""
    from test_cli import tdrm
    from test_prm_model import lab_rollouts

    from prm_train.data import write_rollouts
    from tdrm_search.loading import load_prm
    from tdrm_search.prms.base import ScoreRequest

    rollouts = lab_rollouts(6)
    write_rollouts(tmp_path / "r.jsonl", rollouts)
    out = tdrm("prm", "train", str(tmp_path / "r.jsonl"), "--out", str(tmp_path / "prm"), "--head", head,
               "--kind", "td0", "--rounds", "2", "--epochs", "1", "--batch-size", "3")  # fmt: skip
    assert out.returncode == 0, out.stderr
    scores = load_prm(str(tmp_path / "prm"), backend="hf").score(
        [ScoreRequest(rollouts[0].problem, tuple(rollouts[0].steps))]
    )
    assert len(scores.scores[0]) == len(rollouts[0].steps)
    assert json.loads((tmp_path / "prm" / "tdrm_prm.json").read_text())["head"] == head
