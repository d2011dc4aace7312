"""A clean install, as a new user makes it: a virtual environment without system site-packages, the project
installed the README's way (`bash scripts/install.sh`), then every module of the three packages imported and the
main command started. This machine's system Python has packages the project may forget to declare; here none
are found. pip's cache and local wheels keep it to a few minutes."""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clean_python(tmp_path_factory) -> Path:
    """A fresh virtual environment holding the project installed by scripts/install.sh."""
    env_dir = tmp_path_factory.mktemp("clean-venv")
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    python = env_dir / "bin" / "python3"
    env = {**os.environ, "PATH": f"{env_dir / 'bin'}{os.pathsep}{os.environ['PATH']}", "VIRTUAL_ENV": str(env_dir)}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(["bash", "scripts/install.sh"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return python


@pytest.mark.slow
def test_the_venv_sees_no_system_packages(clean_python):
    code = "import sys; print(any(p.startswith(sys.base_prefix) and 'site-packages' in p for p in sys.path))"
    done = subprocess.run([clean_python, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "False"


@pytest.mark.slow
def test_every_module_imports_from_a_clean_install(clean_python):
    done = subprocess.run(
        [clean_python, "scripts/check_imports.py"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert " 0 failed" in done.stdout


@pytest.mark.slow
def test_the_demo_runs_from_a_clean_install(clean_python, tmp_path):
    command = [clean_python.parent / "tdrm", "demo", "--problems", "2", "--budgets", "2", "--out", tmp_path]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "summary.json").is_file() and "greedy decoding" in done.stdout
