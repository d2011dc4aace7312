"""The `tdrm` command line: one entry point, one module per subcommand.

Packages register their subcommands as entry points in the "tdrm.commands" group (see pyproject.toml); each
names a module whose `register(subparsers)` adds its parser and sets `func` (called with the parsed arguments,
returning an exit code). So the core knows no package above it.

The terminal shows the project's own progress and results; `--verbose` adds the libraries' logs (vLLM,
transformers, torch), and `--log-file` keeps them in a file (see `terminal`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

from tqdm.contrib.logging import logging_redirect_tqdm

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
    add_output_args(parser)
    for subparser in nested_parsers(parser):  # the same flags after any subcommand's name (`tdrm prm train -v`)
        add_output_args(subparser, defaults=argparse.SUPPRESS)  # suppressed: they do not undo those given before
    return parser


def nested_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every subcommand's parser below `parser`, theirs included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                yield subparser
                yield from nested_parsers(subparser)


def add_output_args(parser: argparse.ArgumentParser, defaults: object = None) -> None:
    """`--verbose` and `--log-file`: where the libraries' logs go."""
    parser.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        default=defaults or False,
        help="show the libraries' logs and warnings too (vLLM, transformers, torch), as they print them",
    )
    parser.add_argument(
        "--log-file",
        type=Path,
        default=defaults,
        metavar="PATH",
        help="keep the libraries' logs in PATH (without --verbose)",
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if not args.verbose:
            from tdrm_search.terminal import quiet_libraries

            quiet_libraries(args.log_file)
        with logging_redirect_tqdm():  # log lines print above the progress bars, not through them
            return int(args.func(args) or 0)
    except (ValueError, OSError) as err:  # bad input, a missing file, an unwritable path: one line, no traceback
        print(f"tdrm {args.command}: error: {err}", file=sys.stderr)
        return 2
    finally:
        if args.log_file is not None and not args.verbose:
            print(f"libraries' logs: {args.log_file}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
