"""``python -m mailsync.common.contracts.schemas {write,check}``."""

from mailsync.common.contracts.schemas.cli import main

raise SystemExit(main())
