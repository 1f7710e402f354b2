"""disbatch: run a list of shell commands on local cores, SSH hosts or a Slurm allocation.

`from disbatch import DisBatcher` for embedded use (see `disbatch.api`); the command is `disbatch` (`disbatch.cli`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = '4.0.0.dev0'

__all__ = ['DisBatcher', '__version__']

if TYPE_CHECKING:
    from disbatch.api import DisBatcher


def __getattr__(name: str) -> Any:
    # Imported on first use, so engines and the CLI do not load the embedding API.
    if name == 'DisBatcher':
        from disbatch.api import DisBatcher

        return DisBatcher
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
