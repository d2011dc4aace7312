"""Build policies and PRMs from command-line specs: "lab", "oracle", or a model folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tdrm_search.policies.base import Policy
from tdrm_search.prms.base import PRM

ASSETS = Path(__file__).parent / "assets"
LAB_POLICY = ASSETS / "lab-policy"
LAB_PRM = ASSETS / "lab-prm"
BACKENDS = ("vllm", "hf")


def resolve(spec: str, embedded: Path, what: str) -> Path:
    """ "lab" is the embedded model, "smollm2" the real SmolLM2-135M-Instruct (converted from PyPI on first use),
    anything else a folder."""
    if spec == "smollm2":
        from tdrm_search.smollm2 import smollm2_path

        return smollm2_path()
    path = embedded if spec == "lab" else Path(spec)
    if not path.is_dir():
        raise FileNotFoundError(f"{what} {spec!r}: no model folder at {path}")
    return path


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")


def load_policy(spec: str, backend: str = "vllm", **kwargs) -> Policy:
    """ "lab" is the embedded lab policy, "smollm2" SmolLM2-135M-Instruct; anything else a Hugging Face model folder."""
    check_backend(backend)
    path = resolve(spec, LAB_POLICY, "policy")
    if backend == "hf":
        from tdrm_search.policies.hf import HFPolicy

        return HFPolicy(path, **kwargs)
    from tdrm_search.policies.vllm import VLLMPolicy

    return VLLMPolicy(path, **kwargs)


def load_prm(spec: str | None, backend: str = "vllm", **kwargs) -> PRM:
    """ "oracle" is the lab's exact checker, "none" no verifier (every step 0.5), "lab" the embedded trained lab PRM,
    else a PRM folder (model + tokenizer + tdrm_prm.json, or pass `config=`). None means the best the project ships:
    the lab PRM if present."""
    check_backend(backend)
    if spec is None:
        spec = "lab" if LAB_PRM.is_dir() else "oracle"
    if spec == "none":
        from tdrm_search.prms.constant import ConstantPRM

        return ConstantPRM()
    if spec == "oracle":
        from tdrm_search.prms.oracle import OraclePRM

        return OraclePRM()
    path = resolve(spec, LAB_PRM, "PRM")
    if backend == "hf":
        from tdrm_search.prms.hf import HFPRM

        return HFPRM(path, **kwargs)
    from tdrm_search.prms.vllm import VLLMPRM

    return VLLMPRM(path, **kwargs)


@dataclass(frozen=True)
class EngineSpec:
    """What to build a policy and a PRM from (plain data: a Ray replica builds its own from it). `prm_config` names a
    preset for a PRM folder without tdrm_prm.json; `tensor_parallel_size` splits each vLLM model over that many
    GPUs."""

    policy: str = "lab"
    prm: str | None = None
    backend: str = "vllm"
    prm_backend: str | None = None
    prm_config: str | None = None
    tensor_parallel_size: int = 1

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

        prm_backend = self.prm_backend or self.backend
        config = PRESETS[self.prm_config] if self.prm_config else None
        prm_options = {**engine(prm_backend), **({"config": config} if config else {})}
        return load_policy(self.policy, self.backend, **engine(self.backend)), load_prm(
            self.prm, prm_backend, **prm_options
        )
