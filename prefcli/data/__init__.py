"""Datasets: the format, the Pick-a-Pic builder, the synthetic taste world, folder histories, prompt sets (import submodules directly; nothing heavy here)."""
