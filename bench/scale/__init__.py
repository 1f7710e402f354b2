"""The driver-scale workload: one real driver, thousands of simulated engines on the real wire.

`python -m bench.scale` (see cli.py).
"""
