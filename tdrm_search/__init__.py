"""tdrm_search: test-time search over reasoning steps, guided by process reward models."""

from tdrm_search.config import SearchConfig
from tdrm_search.policies import HFPolicy, Policy, VLLMPolicy
from tdrm_search.prms import HFPRM, PRM, VLLMPRM, PRMConfig
from tdrm_search.search import search, search_batch
from tdrm_search.types import Problem, SearchResult, Trajectory

__all__ = [
    "HFPRM", "HFPolicy", "PRM", "PRMConfig", "Policy", "Problem", "SearchConfig", "SearchResult", "Trajectory",
    "VLLMPRM", "VLLMPolicy", "search", "search_batch",
]
