"""The `tdrm` command line: one entry point, one module per subcommand.

Each module listed in COMMANDS defines `register(subparsers)`, which adds its parser and
sets `func` (called with the parsed arguments, returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = [
    "tdrm_search.commands.search",
    "tdrm_search.commands.rerank",
    "prm_train.cli",
    "tdrm_search.commands.bench",
    "tdrm_search.commands.demo",
    "rl_bridge.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tdrm", description="Test-time search and verification for LLM math reasoning."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as err:
        print(f"tdrm {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
