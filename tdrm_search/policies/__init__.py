"""Policies: the protocol, and the transformers and vLLM backends."""
