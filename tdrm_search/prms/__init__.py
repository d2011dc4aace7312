"""Process reward models: the protocol, configs, and the transformers, vLLM and oracle backends."""
