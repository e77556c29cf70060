"""`python -m mailsync.sender` runs the service."""

from mailsync.sender.main import main

main()
