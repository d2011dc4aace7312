"""Pictures of a search tree: one node per step, coloured by its PRM value, the chosen path highlighted and
final answers marked right or wrong when the reference is known.

Both renderers draw the same `tree_layout.Drawing` (positions, colours, marks, hover text), so the HTML page
(plotly, its JavaScript embedded: one file that works offline) and the SVG/PNG picture (matplotlib) agree.
`write_tree` picks the renderer from the file's extension.
"""

from __future__ import annotations

import html
import os
import textwrap
from pathlib import Path

from tdrm_search.tree_layout import Drawing, drawing
from tdrm_search.types import SearchResult

FORMATS = (".html", ".svg", ".png")
COLORSCALE = "RdYlGn"  # red (low value) to green (high value), in plotly and matplotlib alike
CHOSEN = "#1f4e9c"  # the chosen path
MARKS = {True: ("✓", "#1a7f37"), False: ("✗", "#c62828")}  # a final answer right / wrong against the reference
QUESTION_CHARS = 400  # the question above the tree is shortened to this (hover the question's node for all of it)
LEGEND = "colour: PRM value · thick blue: the chosen path · ✓/✗: final answer right/wrong"


def check_tree_path(path: str | Path) -> Path:
    """`path` as a Path when its extension is one `write_tree` draws; a ValueError naming them otherwise."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise ValueError(
            f"cannot draw a search tree as {path.name!r}: the file must end in one of {', '.join(FORMATS)}"
        )
    folder = next((p for p in path.absolute().parents if p.exists()), None)
    if folder is None or not os.access(folder, os.W_OK):
        raise ValueError(f"cannot write a search tree to {path}: {folder} is not writable")
    return path


def write_tree(result: SearchResult, path: str | Path) -> Path:
    """Draw `result`'s search tree to `path`: .html (interactive, self-contained), .svg or .png."""
    path = check_tree_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    draw = drawing(result)
    if path.suffix.lower() == ".html":
        plotly_figure(draw).write_html(
            path, include_plotlyjs=True, full_html=True, div_id="tdrm-tree", config={"displaylogo": False}
        )
    else:
        matplotlib_figure(draw, path)
    return path


def _size(draw: Drawing) -> tuple[float, float]:
    """Width and height in inches: room for each depth and each leaf."""
    depth = max(n.x for n in draw.nodes)
    rows = max(n.y for n in draw.nodes) + 1
    return 3.5 + 1.6 * depth, 2.0 + 0.22 * rows


def _question_lines(question: str, width: int) -> list[str]:
    """The question in lines of `width` characters, shortened to at most QUESTION_CHARS."""
    return textwrap.wrap(textwrap.shorten(question, QUESTION_CHARS, placeholder=" ..."), width)


def _column(depth: int) -> str:
    return f"step {depth}" if depth else "question"


def _segments(draw: Drawing, edges: list[tuple[int, int]]) -> tuple[list, list]:
    at = {n.id: n for n in draw.nodes}
    xs, ys = [], []
    for u, v in edges:
        xs += [at[u].x, at[v].x, None]
        ys += [at[u].y, at[v].y, None]
    return xs, ys


def plotly_figure(draw: Drawing):
    """The interactive figure: edges, the chosen path, the question, the steps coloured by PRM value (hover: text).
    Every node is one marker point of the two node traces, so a page's drawn node count is its points'."""
    import plotly.graph_objects as go

    scored = [n for n in draw.nodes if n.value is not None]
    unscored = [n for n in draw.nodes if n.value is None]
    fig = go.Figure()
    for edges, colour, width in ((draw.edges, "#b0b0b0", 1), (draw.chosen_edges, CHOSEN, 4)):
        xs, ys = _segments(draw, edges)
        fig.add_scatter(x=xs, y=ys, mode="lines", line={"color": colour, "width": width}, hoverinfo="skip")
    fig.add_scatter(
        x=[n.x for n in unscored],
        y=[n.y for n in unscored],
        mode="markers",
        marker={"symbol": "square", "size": 14, "color": "#9e9e9e", "line": {"color": CHOSEN, "width": 2}},
        hovertext=[n.hover for n in unscored],
        hoverinfo="text",
    )
    marks = [MARKS.get(n.correct, ("", "black")) for n in scored]
    _, height = _size(draw)
    fig.add_scatter(
        x=[n.x for n in scored],
        y=[n.y for n in scored],
        mode="markers+text",
        marker={
            "color": [n.value for n in scored],
            "colorscale": COLORSCALE,
            "cmin": 0.0,
            "cmax": 1.0,
            "colorbar": {
                "title": {"text": "PRM value"},
                "lenmode": "pixels",
                "len": min(300, 96 * height),
                "y": 1,
                "yanchor": "top",
            },
            "size": [15 if n.chosen else 10 for n in scored],
            "line": {
                "color": [CHOSEN if n.chosen else "#555" for n in scored],
                "width": [3 if n.chosen else 0.5 for n in scored],
            },
        },
        text=[m for m, _ in marks],
        textposition="middle right",
        textfont={"size": 16, "color": [c for _, c in marks]},
        hovertext=[n.hover for n in scored],
        hoverinfo="text",
    )
    for n in draw.nodes:
        if n.label:
            fig.add_annotation(
                x=n.x,
                y=n.y,
                text=html.escape(n.label),
                showarrow=False,
                yshift=16,
                font={"size": 11, "color": CHOSEN},
                bgcolor="rgba(255,255,255,0.85)",
            )
    question = "<br>".join(map(html.escape, _question_lines(draw.question, 140)))
    legend = f"{LEGEND} · hover a node for its step"
    columns = sorted({int(n.x) for n in draw.nodes})
    fig.update_layout(
        title={
            "text": f"<b>{html.escape(draw.title)}</b><br><sub>{question}<br><i>{legend}</i></sub>",
            "x": 0.01,
            "y": 1,
            "yref": "container",
            "yanchor": "top",
            "pad": {"t": 14},
        },
        showlegend=False,
        height=int(96 * height) + 160,
        margin={"t": 150, "l": 40, "r": 40, "b": 40},
        plot_bgcolor="white",
        hoverlabel={"align": "left", "bgcolor": "white"},
        xaxis={
            "tickvals": columns,
            "ticktext": [_column(x) for x in columns],
            "zeroline": False,
            "showgrid": False,
            "side": "top",
        },
        yaxis={"autorange": "reversed", "visible": False},
    )
    return fig


def matplotlib_figure(draw: Drawing, path: Path) -> None:
    """The static picture (SVG or PNG) of the same drawing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    at = {n.id: n for n in draw.nodes}
    fig, ax = plt.subplots(figsize=_size(draw))
    for edges, colour, width in ((draw.edges, "#b0b0b0", 1.0), (draw.chosen_edges, CHOSEN, 3.0)):
        segments = [[(at[u].x, at[u].y), (at[v].x, at[v].y)] for u, v in edges]
        ax.add_collection(LineCollection(segments, colors=colour, linewidths=width, zorder=1))
    unscored = [n for n in draw.nodes if n.value is None]
    ax.scatter([n.x for n in unscored], [n.y for n in unscored], marker="s", s=90, c="#9e9e9e", zorder=2)
    scored = [n for n in draw.nodes if n.value is not None]
    points = ax.scatter(
        [n.x for n in scored],
        [n.y for n in scored],
        c=[n.value for n in scored],
        cmap=COLORSCALE,
        vmin=0.0,
        vmax=1.0,
        s=[110 if n.chosen else 45 for n in scored],
        edgecolors=[CHOSEN if n.chosen else "#555" for n in scored],
        linewidths=[2.0 if n.chosen else 0.4 for n in scored],
        zorder=3,
    )
    for n in draw.nodes:
        if n.correct is not None:
            mark, colour = MARKS[n.correct]
            ax.annotate(mark, (n.x, n.y), xytext=(7, 0), textcoords="offset points", va="center", color=colour)
        if n.label:
            ax.annotate(
                n.label,
                (n.x, n.y),
                xytext=(0, 9),
                textcoords="offset points",
                parse_math=False,
                ha="center",
                fontsize=8,
                color=CHOSEN,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85},
                zorder=4,
            )
    fig.colorbar(
        points, ax=ax, label="PRM value", fraction=0.04, shrink=min(1.0, 4.0 / fig.get_figheight()), anchor=(0.0, 1.0)
    )
    ax.set_ylim(max(n.y for n in draw.nodes) + 0.6, -0.9)  # top down, room for the labels above the first row
    ax.set_yticks([])
    columns = sorted({int(n.x) for n in draw.nodes})
    ax.set_xticks(columns, [_column(x) for x in columns])
    ax.xaxis.tick_top()
    ax.set_title(
        "\n".join([draw.title, *_question_lines(draw.question, 110), LEGEND]), fontsize=9, loc="left", parse_math=False
    )
    ax.spines[:].set_visible(False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
