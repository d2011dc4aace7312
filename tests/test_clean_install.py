"""A clean install, as a new user makes it: a virtual environment without system site-packages, the project
installed the README's way (`bash scripts/install.sh`), then every module of the three packages imported. Then the
release path in the same environment: the sdist and the wheel built (`python -m build`, the wheel from the sdist),
the wheel installed over the editable install (`pip install --force-reinstall --no-deps`), and the demo run from
outside the checkout, so the installed package, lab models included, is what runs. This machine's system Python has
packages the project may forget to declare; here none are found. pip's cache and local wheels keep it to a few
minutes."""

from __future__ import annotations

import email
import os
import subprocess
import sys
import tarfile
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# The lab models the demo needs: inside the wheel, or `pip install tdrm` cannot run `tdrm demo`.
ASSETS = [
    "tdrm_search/assets/lab-policy/model.safetensors",
    "tdrm_search/assets/lab-policy/tokenizer.json",
    "tdrm_search/assets/lab-policy/chat_template.jinja",
    "tdrm_search/assets/lab-prm/model.safetensors",
    "tdrm_search/assets/lab-prm/tdrm_prm.json",
]


def venv_env(env_dir: Path) -> dict[str, str]:
    env = {**os.environ, "PATH": f"{env_dir / 'bin'}{os.pathsep}{os.environ['PATH']}", "VIRTUAL_ENV": str(env_dir)}
    env.pop("PYTHONPATH", None)
    return env


@pytest.fixture(scope="module")
def clean_python(tmp_path_factory) -> Path:
    """A fresh virtual environment holding the project installed by scripts/install.sh."""
    env_dir = tmp_path_factory.mktemp("clean-venv")
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    python = env_dir / "bin" / "python3"
    env = venv_env(env_dir)
    done = subprocess.run(["bash", "scripts/install.sh"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return python


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """The sdist and the wheel, built as a release is (`python -m build`: the wheel is built from the sdist)."""
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def only(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, found
    return found[0]


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
def test_the_wheel_and_sdist_carry_the_lab_models_and_full_metadata(dist):
    wheel = only(dist, "tdrm-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = email.message_from_bytes(z.read(only_name(names, ".dist-info/METADATA")))
        entry_points = z.read(only_name(names, ".dist-info/entry_points.txt")).decode()
    missing = [a for a in ASSETS if a not in names]
    assert not missing, f"the wheel lacks the lab models: {missing}"
    assert not any(n.startswith(("tests/", "benchmarks/", "docs/")) for n in names)
    assert meta["Version"] == PROJECT["version"]  # the version is written once, in pyproject.toml
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta["Requires-Python"] == ">=3.11"
    assert meta.get_all("Classifier") and meta.get_all("Project-URL") and meta["Summary"]
    assert "tdrm = tdrm_search.cli:main" in entry_points and "demo = tdrm_search.commands.demo" in entry_points
    with tarfile.open(only(dist, "tdrm-*.tar.gz")) as sdist:
        members = {m.name.split("/", 1)[1] for m in sdist.getmembers() if "/" in m.name}
    assert {"pyproject.toml", "README.md", *ASSETS} <= members


def only_name(names: set[str], suffix: str) -> str:
    found = [n for n in names if n.endswith(suffix)]
    assert len(found) == 1, found
    return found[0]


@pytest.mark.slow
def test_the_demo_runs_from_the_installed_wheel(clean_python, dist, tmp_path):
    env = venv_env(clean_python.parent.parent)
    install = [clean_python, "-m", "pip", "install", "--quiet", "--force-reinstall", "--no-deps"]
    done = subprocess.run([*install, only(dist, "tdrm-*.whl")], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    code = "import importlib.metadata as m, tdrm_search; print(tdrm_search.__file__); print(m.version('tdrm'))"
    done = subprocess.run([clean_python, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env)
    where, version = done.stdout.split()
    assert "site-packages" in where and not Path(where).is_relative_to(ROOT), where  # the wheel, not the checkout
    assert version == PROJECT["version"]
    command = [clean_python.parent / "tdrm", "demo", "--problems", "4", "--budgets", "4", "--out", tmp_path / "demo"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "demo" / "summary.json").is_file() and "greedy decoding" in done.stdout
