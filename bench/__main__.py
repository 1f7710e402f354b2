"""`python -m bench` runs the benchmark suite (see bench/cli.py)."""

from __future__ import annotations

from bench.cli import main

if __name__ == '__main__':
    raise SystemExit(main())
