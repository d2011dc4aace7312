"""`tdrm serve-reward`: the reward server for OpenRLHF's remote reward option (see rl_bridge/README.md)."""

from __future__ import annotations

import argparse
import dataclasses
import os

from rl_bridge.reward import MODES, RewardConfig

TOKEN_ENV = "TDRM_REWARD_TOKEN"


def register(subparsers) -> None:
    p = subparsers.add_parser("serve-reward", help="serve a PRM + verifiable reward over HTTP (OpenRLHF remote RM)")
    defaults = RewardConfig()
    p.add_argument(
        "--prm", default=None, help='"lab", "oracle" or a PRM folder (default: lab PRM if shipped, else oracle)'
    )
    p.add_argument("--backend", default="hf", choices=["hf", "vllm"])
    p.add_argument("--mode", default=defaults.mode, choices=MODES)
    p.add_argument("--weight", type=float, default=defaults.weight, help="mix: PRM weight w")
    p.add_argument("--aggregation", default=defaults.aggregation, help="mix: last, min, prod or mean")
    p.add_argument(
        "--drop-answer-step", action="store_true", help="mix: score the solution without its answer paragraph"
    )
    p.add_argument("--eta", type=float, default=defaults.eta, help="clip threshold")
    p.add_argument("--scale", type=float, default=defaults.scale, help="clip/delta process reward scale")
    p.add_argument("--correct", type=float, default=defaults.correct)
    p.add_argument("--incorrect", type=float, default=defaults.incorrect)
    p.add_argument(
        "--prompt-template", default=None, help='recover the question from prompts, e.g. "Q: {question}\\nA:\\n"'
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--max-body-bytes", type=int, default=8 * 2**20)
    p.add_argument("--max-items", type=int, default=1024)
    p.add_argument("--neutral", type=float, default=0.0, help="reward of an item that cannot be scored")
    p.add_argument("--torch-threads", type=int, default=0, help="torch CPU threads for the PRM (0: torch's default)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from rl_bridge.reward import RewardFunction
    from rl_bridge.server import ServerConfig, create_app

    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    fields = {f.name for f in dataclasses.fields(RewardConfig)}
    options = {k: v for k, v in vars(args).items() if k in fields}
    reward_fn = RewardFunction.load(args.prm, backend=args.backend, **options)
    token = os.environ.get(TOKEN_ENV) or None  # from the environment, never the command line (visible in ps)
    config = ServerConfig(
        token=token,
        max_body_bytes=args.max_body_bytes,
        max_items=args.max_items,
        neutral=args.neutral,
        prompt_template=args.prompt_template,
    )
    print(
        f"tdrm serve-reward: mode {args.mode}, http://{args.host}:{args.port}, "
        f"bearer token {'on' if token else 'off'} ({TOKEN_ENV})"
    )
    uvicorn.run(create_app(reward_fn, config), host=args.host, port=args.port, log_level="warning")
    return 0
