"""Command-line flags generated from config dataclasses, so each default and help text lives once: on the field
(`field(default=..., metadata={"help": ...})`). `--field-name` per field; booleans are switches, `X | None` fields
take "none"; a field's metadata may add `choices` and name its `flag`."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Iterable


def add_config_args(parser: argparse.ArgumentParser, cls: type, only: Iterable[str] | None = None) -> None:
    """A flag for each field of `cls` (or of the fields named in `only`), default and help from the field."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if only is not None and f.name not in only:
            continue
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        flag, text = f.metadata.get("flag", "--" + f.name.replace("_", "-")), f.metadata.get("help", "")
        if hints[f.name] is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default, help=text)
            continue
        parser.add_argument(
            flag, dest=f.name, type=parse_as(hints[f.name]), default=default, choices=f.metadata.get("choices"),
            help=f"{text} (default: {default!r})".lstrip(),
        )  # fmt: skip


def parse_as(hint) -> typing.Callable[[str], object]:
    """The parser of one flag's text: the field's type, or None for "none" when the field is optional."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) and type(None) in args:
        (inner,) = (a for a in args if a is not type(None))
        return lambda text: None if text.lower() == "none" else inner(text)
    return hint


def config_from_args(cls: type, args: argparse.Namespace, **overrides):
    """An instance of `cls` from the parsed flags `add_config_args` added (fields without a flag keep defaults)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    return cls(**{**values, **overrides})
