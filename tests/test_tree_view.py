"""Search-tree pictures: the layout, the drawing of a real lab search, its HTML page in a real headless Chromium,
the SVG/PNG pictures, `tdrm search --tree` and `tdrm bench --trees`.

The browser is the system's Chromium (Debian package, installed by scripts/install.sh), driven by playwright. The
browser test is skipped only where Chromium is absent outside CI; in CI it must run."""

from __future__ import annotations

import copy
import dataclasses
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from tdrm_search.tree import Tree
from tdrm_search.tree_layout import drawing, tidy_layout
from tdrm_search.tree_view import write_tree
from tdrm_search.types import Problem

CHROMIUM_ARGS = [  # this closed network: no background fetches, no first-run or sync traffic
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def lab_result(hf_lab_policy, lab_problems):
    """A real beam search: the lab policy, verified by the shipped lab PRM, on a lab problem with its reference."""
    from tdrm_search.engine import search
    from tdrm_search.loading import load_prm

    return search(lab_problems[1], hf_lab_policy, load_prm("lab", "hf"), method="beam", n=8, seed=0)


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(chromium) and not os.environ.get("CI"):
        pytest.skip("Chromium is not installed here (scripts/install.sh installs it; CI must run this test)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_tidy_layout_puts_depth_across_leaves_down_and_parents_between_their_children():
    def tree(parents: list[int]) -> Tree:
        out = Tree.new(Problem("q"), [0])
        for parent in parents:
            out.add(parent, [1], "step")
        return out

    graph = tree([0, 0, 1, 1, 2]).to_networkx()  # edges 0-1, 0-2, 1-3, 1-4, 2-5
    assert tidy_layout(graph) == {3: (2, 0), 4: (2, 1), 1: (1, 0.5), 5: (2, 2), 2: (1, 2), 0: (0, 1.25)}
    assert tidy_layout(tree([0, 1]).to_networkx()) == {0: (0, 0), 1: (1, 0), 2: (2, 0)}


def test_the_drawing_has_every_node_the_chosen_path_and_graded_answers(lab_result):
    tree, draw = lab_result.tree, drawing(lab_result)
    assert [n.id for n in draw.nodes] == list(range(len(tree.nodes)))
    assert set(draw.edges) == {(n.parent, i) for i, n in enumerate(tree.nodes) if n.parent is not None}
    chosen = [0, *tree.path(lab_result.best.node)]
    assert sorted(n.id for n in draw.nodes if n.chosen) == sorted(chosen)
    assert len(draw.chosen_edges) == len(chosen) - 1
    assert all(n.label for n in draw.nodes if n.chosen and n.id != 0)
    finals = {n.id: n.correct for n in draw.nodes if tree.nodes[n.id].terminal is not None}
    gold = lab_result.problem.answer
    assert finals and finals == {i: tree.nodes[i].answer == gold for i in finals}  # lab answers are integers
    assert all(n.correct is None for n in draw.nodes if n.id not in finals)
    step = next(n for n in draw.nodes if n.id == chosen[1])
    assert tree.nodes[step.id].text.strip().split()[0] in step.hover and "PRM value" in step.hover
    positions = {(n.x, n.y) for n in draw.nodes}
    assert len(positions) == len(draw.nodes)  # no two nodes drawn on top of each other


def test_the_html_page_renders_offline_in_chromium_with_every_node(lab_result, browser, tmp_path):
    path = write_tree(lab_result, tmp_path / "tree.html")
    html = path.read_text()
    assert "<script src=" not in html  # plotly.js is embedded, not fetched
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    page.wait_for_selector("#tdrm-tree .scatterlayer path.point")
    drawn = page.locator("#tdrm-tree .scatterlayer path.point")
    assert drawn.count() == len(lab_result.tree.nodes)
    right = sum(n.correct is True for n in drawing(lab_result).nodes)
    assert page.locator("#tdrm-tree .textpoint text", has_text="✓").count() == right
    assert errors == [] and [u for u in requests if not u.startswith("file:")] == []
    leaf = lab_result.best.node  # hovering the chosen answer's node shows its step text
    assert all(n.value is not None for n in lab_result.tree.nodes[1:])  # points in node order
    box = drawn.nth(leaf).bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector(".hoverlayer .hovertext")
    shown = page.locator(".hoverlayer .hovertext").text_content()  # SVG text: its lines joined without a break
    assert "".join(lab_result.tree.nodes[leaf].text.split()) in "".join(shown.split())
    page.close()


def test_svg_and_png_pictures(lab_result, tmp_path):
    svg = write_tree(lab_result, tmp_path / "tree.svg")
    assert ET.parse(svg).getroot().tag == "{http://www.w3.org/2000/svg}svg"
    png = write_tree(lab_result, tmp_path / "sub" / "tree.PNG")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tree = copy.deepcopy(lab_result.tree)  # MATH-style text: dollar signs (matplotlib must not parse them) and markup
    tree.nodes[tree.path(lab_result.best.node)[0]].text = r"So $0 \le \theta < 2\pi$ <b>&"
    latex = Problem(r"Convert $(0,3)$ to polar coordinates, $0 \le \theta < 2 \pi$.", answer="24")
    latex_result = dataclasses.replace(lab_result, tree=tree, problem=latex)
    assert write_tree(latex_result, tmp_path / "latex.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert r"So $0 \\le \\theta &lt; 2\\pi$ &lt;b&gt;&amp;" in write_tree(latex_result, tmp_path / "l.html").read_text()
    with pytest.raises(ValueError, match=r"tree\.pdf.*\.html, \.svg, \.png"):
        write_tree(lab_result, tmp_path / "tree.pdf")


def tdrm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tdrm_search", *args], capture_output=True, text=True, timeout=600)


def test_search_command_draws_the_tree(lab_problems, tmp_path):
    problem = lab_problems[1]
    engines = ["--policy", "lab", "--prm", "lab", "--backend", "hf", "--method", "beam", "-n", "4"]
    out = tdrm("search", problem.question, *engines, "--reference", problem.answer, "--tree", str(tmp_path / "t.html"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("answer: ") and f"tree: {tmp_path / 't.html'}" in out.stdout
    assert f"answer {problem.answer}, reference {problem.answer}" in (tmp_path / "t.html").read_text()
    out = tdrm("search", problem.question, *engines, "--tree", str(tmp_path / "t.jpg"))
    assert out.returncode == 2 and "Traceback" not in out.stderr and "'t.jpg'" in out.stderr, out.stderr


def test_bench_saves_k_trees_per_method(tmp_path):
    from tdrm_search.cli import main

    argv = ["bench", "-d", "lab", "--limit", "3", "-m", "best_of_n", "beam", "-n", "2", "--backend", "hf"]
    assert main([*argv, "--prm", "oracle", "--out", str(tmp_path / "r.jsonl"), "--trees", "2", "--no-progress"]) == 0
    trees = sorted(p.name for p in (tmp_path / "trees").iterdir())
    assert trees == [f"lab_{m}_n2_seed0_{i}.html" for m in ("beam", "best_of_n") for i in ("lab-0-0", "lab-0-1")]
    assert main([*argv, "--prm", "oracle", "--out", str(tmp_path / "s.jsonl"), "--trees", "-1"]) == 2
