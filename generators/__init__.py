"""Synthetic domain and translator: 3DMM, renderer, alignment, G/G' networks, losses, training, synthesis."""
