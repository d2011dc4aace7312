"""CLI flags generated from config dataclasses: defaults and help from the fields, types parsed, bad values refused."""

from __future__ import annotations

import argparse
import dataclasses

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
