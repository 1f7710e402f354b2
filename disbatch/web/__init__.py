"""The `--web` live status page: `server.WebStatus` (the HTTP server, a RunObserver) and `page` (the document)."""

from __future__ import annotations

from disbatch.web.server import WebStatus

__all__ = ['WebStatus']
