"""Options shared by every command that runs the engine: the policy, the PRM, their backends, where the
transformers models run (`--device`, `--dtype`), and the search options, whose flags come from `SearchConfig`'s
fields. `add_placement_args` and `add_revision_arg` also serve the other commands that build models."""

from __future__ import annotations

import argparse
import dataclasses

from tdrm_search.config import PER_RUN, SearchConfig
from tdrm_search.config_args import add_config_args
from tdrm_search.devices import DEVICE_HELP, DTYPE_HELP
from tdrm_search.loading import BACKENDS, MODEL_HELP, EngineSpec
from tdrm_search.prms.config import PRESETS

SEARCH_OPTIONS = [f.name for f in dataclasses.fields(SearchConfig) if f.name not in PER_RUN]


def add_placement_args(parser) -> None:
    """`--device` and `--dtype`: where the transformers models run and in what precision."""
    parser.add_argument("--device", default="auto", help=f"device of the transformers models: {DEVICE_HELP}")
    parser.add_argument(
        "--dtype", default="auto", help=f"dtype of the transformers models (a vLLM engine's when named): {DTYPE_HELP}"
    )


def add_revision_arg(parser, flag: str, what: str) -> None:
    """`flag` (e.g. --prm-revision): the revision of a Hugging Face model id."""
    parser.add_argument(flag, metavar="REV", help=f"branch, tag or commit of {what} when it is a Hugging Face model id")


def add_policy_arg(parser) -> None:
    """`--policy` and its `--revision`: the model that writes solutions."""
    parser.add_argument("--policy", default="lab", help=f'{MODEL_HELP}, "lab" (the embedded lab policy) or "smollm2"')
    add_revision_arg(parser, "--revision", "--policy")


def add_prm_arg(
    parser, default: str | None, names: str = '"lab", "oracle" or "none"', unset: str = "the best shipped PRM"
) -> None:
    """`--prm` and its `--prm-revision`: the verifier; `names` lists the built-in names this command takes, `unset`
    says what no --prm means."""
    shown = unset if default is None else default
    parser.add_argument("--prm", default=default, help=f"{MODEL_HELP}, {names} (default: {shown})")
    add_revision_arg(parser, "--prm-revision", "--prm")


def add_backend_arg(parser, default: str | None, what: str = "the policy", flag: str = "--backend") -> None:
    parser.add_argument(flag, choices=BACKENDS, default=default, help=f"engine for {what}")


def add_engine_args(parser: argparse.ArgumentParser) -> None:
    engines = parser.add_argument_group("engines")
    add_policy_arg(engines)
    add_prm_arg(engines, None)
    add_backend_arg(engines, "vllm")
    add_backend_arg(engines, None, "the PRM (default: --backend)", "--prm-backend")
    engines.add_argument(
        "--prm-config",
        choices=sorted(PRESETS),
        metavar="PRESET",
        help=f"read-out format of a PRM folder without tdrm_prm.json: one of {sorted(PRESETS)} "
        "(tdrm: THUDM/TDRM's released value-head PRMs)",
    )
    engines.add_argument(
        "--tensor-parallel-size",
        type=int,
        default=1,
        metavar="G",
        help="split each vLLM model over G GPUs (vLLM's tensor_parallel_size)",
    )
    add_placement_args(engines)
    add_config_args(parser.add_argument_group("search options (SearchConfig)"), SearchConfig, only=SEARCH_OPTIONS)


def search_options(args: argparse.Namespace) -> dict:
    """The search options given on the command line (those left at their defaults are not passed)."""
    defaults = SearchConfig()
    return {k: getattr(args, k) for k in SEARCH_OPTIONS if getattr(args, k) != getattr(defaults, k)}


def engine_spec(args: argparse.Namespace) -> EngineSpec:
    """The policy and PRM that `add_engine_args` options name, as a spec."""
    return EngineSpec(
        policy=args.policy,
        prm=args.prm,
        backend=args.backend,
        prm_backend=args.prm_backend,
        prm_config=args.prm_config,
        tensor_parallel_size=args.tensor_parallel_size,
        policy_revision=args.revision,
        prm_revision=args.prm_revision,
        device=args.device,
        dtype=args.dtype,
    )


def load_engines(args: argparse.Namespace):
    """The policy and PRM that `add_engine_args` options name."""
    return engine_spec(args).load()
