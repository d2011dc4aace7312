"""Synthetic tasks whose every step can be checked exactly (the CPU lab)."""
