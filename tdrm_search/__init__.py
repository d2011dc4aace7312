"""tdrm_search: test-time search over reasoning steps, guided by process reward models.

Public names load on first use, so light modules (grading, the lab task) import without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_EXPORTS = {
    "search": "tdrm_search.engine",
    "search_batch": "tdrm_search.engine",
    "search_iter": "tdrm_search.engine",
    "SearchConfig": "tdrm_search.config",
    "Problem": "tdrm_search.types",
    "SearchResult": "tdrm_search.types",
    "Progress": "tdrm_search.types",
    "Round": "tdrm_search.types",
    "Trajectory": "tdrm_search.types",
    "Policy": "tdrm_search.policies.base",
    "HFPolicy": "tdrm_search.policies.hf",
    "VLLMPolicy": "tdrm_search.policies.vllm",
    "PRM": "tdrm_search.prms.base",
    "PRMConfig": "tdrm_search.prms.config",
    "PRESETS": "tdrm_search.prms.config",
    "HFPRM": "tdrm_search.prms.hf",
    "VLLMPRM": "tdrm_search.prms.vllm",
    "OraclePRM": "tdrm_search.prms.oracle",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from tdrm_search.config import SearchConfig
    from tdrm_search.engine import search, search_batch, search_iter
    from tdrm_search.policies.base import Policy
    from tdrm_search.policies.hf import HFPolicy
    from tdrm_search.policies.vllm import VLLMPolicy
    from tdrm_search.prms.base import PRM
    from tdrm_search.prms.config import PRESETS, PRMConfig
    from tdrm_search.prms.hf import HFPRM
    from tdrm_search.prms.oracle import OraclePRM
    from tdrm_search.prms.vllm import VLLMPRM
    from tdrm_search.types import Problem, Progress, Round, SearchResult, Trajectory


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tdrm_search' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
