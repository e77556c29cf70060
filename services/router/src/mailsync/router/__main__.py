"""`python -m mailsync.router` runs the service."""

from mailsync.router.main import main

main()
