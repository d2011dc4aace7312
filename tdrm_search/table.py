"""The one table formatter: every table the project prints (bench, rerank, demo, benchmarks) goes through here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def format_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
    *,
    markdown: bool = False,
    floatfmt: str = ".4f",
    headers: Mapping[str, str] | None = None,
) -> str:
    """`rows` as a table of `columns` (default: the first row's keys), one line per row: right-aligned plain text,
    or a Markdown table. A missing or None cell is "-", a float is formatted with `floatfmt`; `headers` renames
    columns in the header line."""
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0])
    names = [(headers or {}).get(c, c) for c in columns]

    def cell(value: Any) -> str:
        return "-" if value is None else format(value, floatfmt) if isinstance(value, float) else str(value)

    body = [[cell(row.get(c)) for c in columns] for row in rows]
    if markdown:
        lines = [names, ["---"] * len(columns), *body]
        return "\n".join("| " + " | ".join(line) + " |" for line in lines)
    widths = [max(len(n), *(len(line[i]) for line in body)) for i, n in enumerate(names)]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) for line in [names, *body])
