"""The systems tdrm is measured against, as importable code with tests (benchmarks compare with these)."""
