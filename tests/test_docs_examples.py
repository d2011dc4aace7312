"""Every fenced code block of the README and the docs is either run or checked, so an example that stops working
fails CI.

- A ```bash or ```python block runs, page by page in a fresh folder, blocks in page order (a later block may use
  what an earlier one wrote). A block that appears on several pages runs once, on the first (README.md first).
- A block preceded by `<!-- skip-run: why -->` (it needs a GPU, a model to download, a server that runs until
  stopped, or hours) is checked, not run: bash syntax (`bash -n`); every `tdrm` command in it parsed by tdrm's own
  argument parser; `--help` of every benchmark script it starts; a Python block compiled and its imports run.
- ```text blocks (program output, file layouts, config lines) are neither; any other fence (or none) fails: a page
  must say which of the three a block is.

Sizes in the docs are tiny on purpose (`tdrm demo --problems 4 --budgets 4`): the whole file takes a few minutes.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
RUN = ("bash", "python")
KINDS = (*RUN, "text")
FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<code>.*?)^```[ \t]*$", re.M | re.S)
SKIP = re.compile(r"<!--\s*skip-run:\s*(?P<why>.+?)\s*-->\s*$", re.S)
# Placeholders a skipped command may name, so that it parses as a user would type it.
PLACEHOLDER_ENV = {"SLURM_ARRAY_TASK_ID": "0"}
BLOCK_TIMEOUT_S = 420


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    kind: str
    code: str
    skip: str | None  # why it is not run; None: it runs

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks_of(page: Path) -> list[Block]:
    text = page.read_text()
    found = []
    for m in FENCE.finditer(text):
        before = text[: m.start()].rstrip()
        last_line = before.rsplit("\n", 1)[-1]
        skip = SKIP.search(last_line)
        found.append(
            Block(
                page=page,
                line=text.count("\n", 0, m.start()) + 1,
                kind=m["info"].strip(),
                code=m["code"],
                skip=skip["why"] if skip else None,
            )
        )
    return found


ALL = [b for page in PAGES for b in blocks_of(page)]


def runnable_by_page() -> dict[Path, list[Block]]:
    """Each runnable block under the first page that shows it."""
    seen: set[str] = set()
    pages: dict[Path, list[Block]] = {}
    for b in ALL:
        if b.kind in RUN and b.skip is None and b.code not in seen:
            seen.add(b.code)
            pages.setdefault(b.page, []).append(b)
    return pages


RUNNABLE = runnable_by_page()
SKIPPED = [b for b in ALL if b.kind in RUN and b.skip is not None]


def env() -> dict[str, str]:
    e = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    e.pop("PYTHONPATH", None)  # the installed package, as a reader has it
    return e


def test_every_block_says_what_it_is():
    assert ALL, "no fenced blocks found"
    bad = [f"{b.where}: ```{b.kind}" for b in ALL if b.kind not in KINDS]
    assert not bad, "fences must be ```bash, ```python or ```text:\n" + "\n".join(bad)
    odd = [b.where for b in ALL if b.skip is not None and b.kind not in RUN]
    assert not odd, f"skip-run marks a block that is never run anyway: {odd}"


def test_most_examples_run():
    """A guard against marking everything skip-run: the quick starts run, and so do most blocks."""
    readme = [b for b in ALL if b.page.name == "README.md" and b.kind in RUN]
    assert sum(b.skip is None for b in readme) >= 3, "the README's three quick starts must run"
    assert len(SKIPPED) < sum(len(v) for v in RUNNABLE.values()) + len(SKIPPED) // 2 + 8


@pytest.mark.slow
@pytest.mark.parametrize("page", list(RUNNABLE), ids=lambda p: str(p.relative_to(ROOT)))
def test_page_examples_run(page: Path, tmp_path: Path):
    for b in RUNNABLE[page]:
        if b.kind == "python":
            script = tmp_path / f"example_{b.line}.py"
            script.write_text(b.code)
            command = [sys.executable, str(script)]
        else:
            command = ["bash", "-euo", "pipefail", "-c", b.code]
        done = subprocess.run(command, cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)
        assert done.returncode == 0, (
            f"{b.where}: the {b.kind} example failed (exit {done.returncode}):\n{b.code}\n"
            f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-5000:]}"
        )


def commands(code: str) -> list[list[str]]:
    """The simple commands of a bash block (continuations joined, comments dropped, split at && ; |), each without
    its leading VAR=value assignments and `nice`/`timeout` wrappers."""
    code = code.replace("\\\n", " ")
    code = re.sub(r"\$'((?:[^'\\]|\\.)*)'", lambda m: shlex.quote(m[1]), code)  # $'...' as plain quotes
    code = re.sub(r"\$(\w+)|\$\{(\w+)\}", lambda m: PLACEHOLDER_ENV.get(m[1] or m[2], m[0]), code)
    out = []
    for line in code.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words: list[str] = []
        for word in [*lexer, ";"]:
            if word and set(word) <= set(";&|"):
                if words:
                    out.append(words)
                words = []
            else:
                words.append(word)
    cleaned = []
    for words in out:
        while words and re.fullmatch(r"\w+=.*", words[0]):
            words = words[1:]
        if words[:1] == ["nice"]:
            words = words[3:] if words[1:2] == ["-n"] else words[1:]
        if words[:1] == ["timeout"]:
            words = words[2:]
        if words:
            cleaned.append(words)
    return cleaned


def test_commands_are_split_as_bash_would():
    code = "OMP_NUM_THREADS=1 nice -n 19 python -m benchmarks.rl_lab --seeds 0 1   # note\n"
    code += "tdrm a \\\n --b $'x\\ny' && tdrm c"
    assert commands(code) == [
        ["python", "-m", "benchmarks.rl_lab", "--seeds", "0", "1"],
        ["tdrm", "a", "--b", "x\\ny"],
        ["tdrm", "c"],
    ]


PARSE_TDRM = """
import json, sys
from tdrm_search.cli import build_parser
parser = build_parser()
failed = []
for argv in json.loads(sys.argv[1]):
    try:
        parser.parse_args(argv)
    except SystemExit as stop:
        if stop.code:
            failed.append(argv)
print(json.dumps(failed))
"""


@pytest.mark.slow
def test_skipped_examples_are_checked(tmp_path: Path):
    """What is not run is still checked: syntax, tdrm's flags, the benchmark scripts' --help, Python imports."""
    assert SKIPPED
    tdrm_argvs: list[list[str]] = []
    scripts: dict[tuple[str, ...], str] = {}
    imports: list[str] = []
    for b in SKIPPED:
        if b.kind == "bash":
            done = subprocess.run(["bash", "-n", "-c", b.code], capture_output=True, text=True)
            assert done.returncode == 0, f"{b.where}: bash syntax error: {done.stderr}"
            for words in commands(b.code):
                if words[0] == "tdrm":
                    tdrm_argvs.append(words[1:])
                elif words[0] in ("python", "python3") and len(words) > 1:
                    target = tuple(words[1:3] if words[1] == "-m" else words[1:2])
                    if target[-1].startswith("benchmarks"):
                        scripts.setdefault(target, b.where)
        else:
            try:
                tree = ast.parse(b.code)
            except SyntaxError as err:
                pytest.fail(f"{b.where}: Python syntax error: {err}")
            imports += [ast.unparse(n) for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    done = subprocess.run(
        [sys.executable, "-c", PARSE_TDRM, json.dumps(tdrm_argvs)], capture_output=True, text=True, env=env()
    )
    assert done.returncode == 0, done.stderr[-3000:]
    failed = json.loads(done.stdout.strip().splitlines()[-1])
    assert not failed, f"tdrm rejects these documented commands: {failed}\n{done.stderr[-3000:]}"
    done = subprocess.run([sys.executable, "-c", "\n".join(imports)], capture_output=True, text=True, env=env())
    assert done.returncode == 0, f"a documented import fails:\n{done.stderr[-3000:]}"
    for target, where in scripts.items():
        done = subprocess.run(
            [sys.executable, *target, "--help"], cwd=ROOT, capture_output=True, text=True, env=env(), timeout=300
        )
        why = f"{where}: {' '.join(target)} --help failed: {done.stderr[-3000:]}"
        assert done.returncode == 0 and "usage" in done.stdout, why
