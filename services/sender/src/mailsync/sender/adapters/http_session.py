"""The service's one aiohttp client session, opened on start-up (aiohttp needs the running event loop)."""

from __future__ import annotations

import aiohttp


class HttpSession:
    """Holds a `ClientSession` between `open` and `close`; HTTP adapters share it (connection pooling)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def open(self) -> None:
        """Create the session (call on the running loop)."""
        if self._session is None:
            self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        """Close the session; a later `open` creates a new one."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The open session."""
        if self._session is None:
            raise RuntimeError("the HTTP session is not open: the application has not started")
        return self._session
