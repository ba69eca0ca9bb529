"""Orchestration: data root, command-line plumbing, tables, regression and performance benchmarks."""
