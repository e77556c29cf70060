"""Where downloaded artefacts (the Kafka jars) are cached, shared by every clone and every run.

``$MAILSYNC_CACHE_DIR`` wins; otherwise ``$XDG_CACHE_HOME/mailsync`` or ``~/.cache/mailsync``.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Return the cache root (not created here; writers create the sub-directories they need)."""
    explicit = os.environ.get("MAILSYNC_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "mailsync"
