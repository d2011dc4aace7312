"""The `tdrm` command line: one entry point, one module per subcommand.

Packages register their subcommands as entry points in the "tdrm.commands" group (see pyproject.toml); each
names a module whose `register(subparsers)` adds its parser and sets `func` (called with the parsed arguments,
returning an exit code). So the core knows no package above it.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points

GROUP = "tdrm.commands"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tdrm", description="Test-time search and verification for LLM math reasoning."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    commands = sorted(entry_points(group=GROUP), key=lambda ep: ep.name)
    if not commands:
        raise SystemExit(f"tdrm: no subcommands are registered ({GROUP!r} entry points): run `bash scripts/install.sh`")
    for command in commands:
        command.load().register(subparsers)
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
