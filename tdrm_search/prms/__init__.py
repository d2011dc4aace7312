"""Process reward models: the protocol, configs, and the transformers, vLLM, oracle and constant backends."""
