"""`python -m bench.scale`: the driver-scale workload (see bench/scale/cli.py)."""

from __future__ import annotations

from bench.scale.cli import main

if __name__ == '__main__':
    raise SystemExit(main())
