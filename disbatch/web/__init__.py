"""The `--web` live status page: `status_server.WebStatus` (the HTTP server, a RunObserver), `page` (the document)."""

from __future__ import annotations

from disbatch.web.status_server import WebStatus

__all__ = ['WebStatus']
