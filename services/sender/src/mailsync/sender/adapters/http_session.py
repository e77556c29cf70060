"""The service's one aiohttp client session, opened on start-up (aiohttp needs the running event loop)."""

from __future__ import annotations

import ssl

import aiohttp


class HttpSession:
    """Holds a `ClientSession` between `open` and `close`; HTTP adapters share it (connection pooling).

    `ca_file` is an extra CA bundle trusted besides the system's (the Graph sandbox's local CA).
    """

    def __init__(self, ca_file: str | None = None) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._ca_file = ca_file

    def open(self) -> None:
        """Create the session (call on the running loop)."""
        if self._session is None:
            if self._ca_file is None:
                self._session = aiohttp.ClientSession()
                return
            trusted = ssl.create_default_context()
            trusted.load_verify_locations(cafile=self._ca_file)
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusted))

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
