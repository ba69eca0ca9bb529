"""Evaluation protocols (LFW, IJB-A), verification metrics and identity-separation analysis.

Every protocol takes an embedder (see `recognition.embedders`) and returns plain results; the
command lines, the trainer's evaluation callback and `bench.run` all go through the same functions.
"""
