"""Options shared by every command that runs the engine: the policy, the PRM, their backends, and the search
options, whose flags come from `SearchConfig`'s fields."""

from __future__ import annotations

import argparse
import dataclasses

from tdrm_search.config import PER_RUN, SearchConfig
from tdrm_search.config_args import add_config_args
from tdrm_search.loading import BACKENDS
from tdrm_search.prms.config import PRESETS

SEARCH_OPTIONS = [f.name for f in dataclasses.fields(SearchConfig) if f.name not in PER_RUN]


def add_engine_args(parser: argparse.ArgumentParser) -> None:
    engines = parser.add_argument_group("engines")
    engines.add_argument("--policy", default="lab", help='model folder, "lab" (the embedded lab policy) or "smollm2"')
    engines.add_argument("--prm", default=None, help='PRM folder, "lab", "oracle" or "none" (default: best shipped)')
    engines.add_argument("--backend", choices=BACKENDS, default="vllm", help="engine for the policy")
    engines.add_argument("--prm-backend", choices=BACKENDS, help="engine for the PRM (default: --backend)")
    engines.add_argument(
        "--prm-config",
        choices=sorted(PRESETS),
        metavar="PRESET",
        help=f"read-out format of a PRM folder without tdrm_prm.json: one of {sorted(PRESETS)} "
        "(tdrm: THUDM/TDRM's released value-head PRMs)",
    )
    add_config_args(parser.add_argument_group("search options (SearchConfig)"), SearchConfig, only=SEARCH_OPTIONS)


def search_options(args: argparse.Namespace) -> dict:
    """The search options given on the command line (those left at their defaults are not passed)."""
    defaults = SearchConfig()
    return {k: getattr(args, k) for k in SEARCH_OPTIONS if getattr(args, k) != getattr(defaults, k)}


def load_engines(args: argparse.Namespace):
    """The policy and PRM that `add_engine_args` options name."""
    from tdrm_search.loading import load_policy, load_prm

    config = PRESETS[args.prm_config] if args.prm_config else None
    return load_policy(args.policy, args.backend), load_prm(args.prm, args.prm_backend or args.backend, config=config)
