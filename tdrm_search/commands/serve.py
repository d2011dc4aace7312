"""`tdrm serve`: search as a service, an OpenAI-compatible /v1/completions and /v1/chat/completions whose answer is
the searched solution (`tdrm_search/service.py`). The policy and PRM are any `--policy` / `--prm` (a server URL
included); the search flags are the defaults a request's `search` body field overrides."""

from __future__ import annotations

import argparse
import os

from tdrm_search.commands.engine_args import add_engine_args, load_engines, search_options
from tdrm_search.config import METHODS

TOKEN_ENV = "TDRM_SERVE_TOKEN"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="serve search as an OpenAI-compatible completions API (the answer is the searched solution)"
    )
    p.add_argument("--method", choices=METHODS, default="beam")
    p.add_argument("-n", type=int, default=16, help="budget: complete solutions the method may produce")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8100)
    p.add_argument("--served-model-name", default="tdrm-search", help="the model name /v1/models reports")
    p.add_argument("--batch-window", type=float, default=0.05, metavar="S", help="seconds to gather requests")
    p.add_argument("--max-batch", type=int, default=256, help="questions in one search_batch at most")
    add_engine_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from tdrm_search.config import SearchConfig
    from tdrm_search.service import ServeConfig, create_app

    defaults = SearchConfig.make(args.method, args.n, args.seed, **search_options(args))
    policy, prm = load_engines(args)
    token = os.environ.get(TOKEN_ENV) or None  # from the environment, never the command line (visible in ps)
    config = ServeConfig(
        model_name=args.served_model_name, token=token, batch_window_s=args.batch_window, max_batch=args.max_batch
    )
    print(
        f"tdrm serve: {args.method} n={args.n}, http://{args.host}:{args.port}/v1, "
        f"bearer token {'on' if token else 'off'} ({TOKEN_ENV})",
        flush=True,
    )
    uvicorn.run(create_app(policy, prm, defaults, config), host=args.host, port=args.port, log_level="warning")
    return 0
