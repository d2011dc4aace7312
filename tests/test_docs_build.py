"""The documentation site builds with no warnings (`mkdocs build --strict`: a broken link, anchor or API reference
fails), and the README's links point at pages that exist."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def build(config: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)


def test_the_site_builds_strictly(tmp_path):
    done = build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert "WARNING" not in done.stderr, done.stderr[-5000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for name in ("search_batch", "SearchConfig", "RewardFunction", "td_lambda_targets"):
        assert name in api, f"the API reference lacks {name}"


def test_a_broken_link_fails_the_build(tmp_path):
    """The strictness is real: the same site with one link to a missing page does not build."""
    docs = tmp_path / "docs"
    subprocess.run(["cp", "-r", str(ROOT / "docs"), str(docs)], check=True)
    (docs / "index.md").write_text((docs / "index.md").read_text() + "\n[gone](no-such-page.md)\n")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    config["docs_dir"] = str(docs)
    config["plugins"] = ["search"]  # the API page's ::: lines then stay text: only the link is under test
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    done = build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0 and "no-such-page.md" in done.stdout + done.stderr


def test_readme_links_resolve_and_it_stays_short():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    assert any(link.startswith("docs/") for link in links)
    missing = [link for link in links if "://" not in link and not (ROOT / link).exists()]
    assert not missing, f"README links to missing files: {missing}"
    for readme in ("rl_bridge/README.md", "prm_train/README.md", "benchmarks/lab/README.md"):
        base = (ROOT / readme).parent
        for link in re.findall(r"\]\(([^)#\s]+)", (ROOT / readme).read_text()):
            assert (base / link).exists(), f"{readme} links to a missing {link}"
