from tdrm_search.prms.base import PRM, ScoreOutput, ScoreRequest
from tdrm_search.prms.config import PRESETS, PRMConfig
from tdrm_search.prms.hf import HFPRM
from tdrm_search.prms.vllm import VLLMPRM

__all__ = ["PRM", "PRESETS", "PRMConfig", "HFPRM", "VLLMPRM", "ScoreOutput", "ScoreRequest"]
