"""`tdrm serve-reward`: the reward server for OpenRLHF's remote reward option (see rl_bridge/README.md)."""

from __future__ import annotations

import argparse
import dataclasses
import os

from rl_bridge.reward import RewardConfig
from rl_bridge.server_config import ServerConfig
from tdrm_search.commands.engine_args import add_backend_arg, add_placement_args, add_prm_arg
from tdrm_search.config_args import add_config_args, config_from_args

TOKEN_ENV = "TDRM_REWARD_TOKEN"


def register(subparsers) -> None:
    p = subparsers.add_parser("serve-reward", help="serve a PRM + verifiable reward over HTTP (OpenRLHF remote RM)")
    add_prm_arg(p, None, '"lab" or "oracle"', "the lab PRM if shipped, else oracle")
    add_backend_arg(p, "hf", "the PRM")
    add_placement_args(p)
    add_config_args(p, RewardConfig)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    add_config_args(p, ServerConfig, only=[f.name for f in dataclasses.fields(ServerConfig) if f.name != "token"])
    p.add_argument("--torch-threads", type=int, default=0, help="torch CPU threads for the PRM (0: torch's default)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from rl_bridge.reward import RewardFunction
    from rl_bridge.server import create_app
    from tdrm_search.loading import load_prm

    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    reward_config = config_from_args(RewardConfig, args)
    place = {"revision": args.prm_revision, "device": args.device, "dtype": args.dtype}
    prm = load_prm(args.prm, backend=args.backend, **place) if reward_config.uses_prm else None
    reward_fn = RewardFunction(reward_config, prm)
    token = os.environ.get(TOKEN_ENV) or None  # from the environment, never the command line (visible in ps)
    config = config_from_args(ServerConfig, args, token=token)
    print(
        f"tdrm serve-reward: mode {args.mode}, http://{args.host}:{args.port}, "
        f"bearer token {'on' if token else 'off'} ({TOKEN_ENV})"
    )
    uvicorn.run(create_app(reward_fn, config), host=args.host, port=args.port, log_level="warning")
    return 0
