from tdrm_search.policies.base import GenerateOutput, Policy, Sample, SampleRequest
from tdrm_search.policies.hf import HFPolicy
from tdrm_search.policies.vllm import VLLMPolicy

__all__ = ["GenerateOutput", "HFPolicy", "Policy", "Sample", "SampleRequest", "VLLMPolicy"]
