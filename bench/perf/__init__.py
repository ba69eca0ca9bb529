"""Speed and memory benchmarks. Each writes a JSON and a Markdown record under results/perf/.

Timed here, never in tests: numbers depend on the machine, and comparisons are run side by side in
one process so they share its conditions.
"""
