"""Side-by-side benchmarks of disbatch against xargs -P (sh, bash), GNU parallel, HyperQueue and HyperShell
(SPEC §5); run with `python -m bench`.

See bench/README.md for the workloads, what is measured and how to read the figures.
"""
