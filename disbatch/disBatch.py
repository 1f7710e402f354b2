"""The reference's module path: `from disbatch import disBatch; disBatch.DisBatcher(...)` keeps working."""

from disbatch.api import DisBatcher

__all__ = ['DisBatcher']
