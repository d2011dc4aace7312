"""Where a transformers model runs and in what precision: `device` and `dtype`, as the command line spells them.

device: "auto" (the first CUDA GPU when torch sees one, else the CPU), "cpu", "cuda" or "cuda:N".
dtype: "auto" (bfloat16 on a GPU, float16 on one without bfloat16; float32 on the CPU), "float32", "bfloat16" or
"float16" (also "fp32", "bf16", "fp16"). A GPU asked for where torch sees none is a ValueError that says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch loads when a device is resolved, not when the command line is built
    import torch

DEVICE_HELP = 'auto (a CUDA GPU when present, else the CPU), "cpu", "cuda" or "cuda:N"'
DTYPES = ("float32", "bfloat16", "float16")
ALIASES = {"fp32": "float32", "float": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}
DTYPE_HELP = "auto (bfloat16 on a GPU, float32 on the CPU), float32, bfloat16 or float16"


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """The torch device `device` names; "auto" (or None) is CUDA when present, else the CPU."""
    import torch

    if isinstance(device, torch.device):
        device = str(device)
    name = (device or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        parsed = torch.device(name)
    except RuntimeError:
        parsed = None
    if parsed is None or parsed.type not in ("cpu", "cuda") or (parsed.type == "cpu" and parsed.index):
        raise ValueError(f"device {device!r}: expected {DEVICE_HELP}")
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r}: no CUDA GPU is available here (torch {torch.__version__} sees none); "
                "use --device cpu or auto"
            )
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(f"device {device!r}: this machine has {count} CUDA GPU(s), cuda:0..cuda:{count - 1}")
    return parsed


def resolve_dtype(dtype: str | torch.dtype | None = "auto", device: str | torch.device | None = "auto") -> torch.dtype:
    """The torch dtype `dtype` names; "auto" (or None) is bfloat16 on a GPU (float16 where the GPU lacks
    bfloat16) and float32 on the CPU."""
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    name = (dtype or "auto").strip().lower().removeprefix("torch.")
    if name == "auto":
        if resolve_device(device).type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    name = ALIASES.get(name, name)
    if name not in DTYPES:
        raise ValueError(f"dtype {dtype!r}: expected {DTYPE_HELP}")
    return getattr(torch, name)


def placement(device: str | torch.device | None = "auto", dtype: str | torch.dtype | None = "auto"):
    """(device, dtype) resolved together: "auto" dtype follows the device chosen."""
    where = resolve_device(device)
    return where, resolve_dtype(dtype, where)


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's parameters (the CPU for a model without any)."""
    import torch

    return next(model.parameters(), torch.empty(0)).device


def cpu_pinning(cores: Sequence[int]) -> dict[str, str]:
    """The environment that sizes a vLLM CPU engine's OpenMP pool to `cores` (consecutive; one thread a core).

    vLLM's multiprocess executor also binds the threads to those cores; the one-process executor that a single CPU
    engine runs on does not, so the caller sets the process's affinity too (`os.sched_setaffinity`)."""
    if list(cores) != list(range(cores[0], cores[0] + len(cores))):
        raise ValueError(f"cores {list(cores)}: vLLM binds its CPU threads to a range of consecutive cores")
    return {"OMP_NUM_THREADS": str(len(cores)), "VLLM_CPU_OMP_THREADS_BIND": f"{cores[0]}-{cores[-1]}"}
