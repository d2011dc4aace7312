"""Types on the public API: mypy over tdrm_search's public modules and the packages' entry points (the file list and
the settings are [tool.mypy] in pyproject.toml), clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_public_api_type_checks(tmp_path):
    command = [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy-cache")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-3000:]
    assert "Success: no issues found" in done.stdout
