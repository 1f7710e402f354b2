"""disbatch: run a list of shell commands on local cores, SSH hosts or a Slurm allocation."""

from __future__ import annotations

__version__ = '4.0.0.dev0'

__all__ = ['__version__']
