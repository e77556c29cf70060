"""`python -m mailsync.ingest_gmail` runs the service."""

from mailsync.ingest_gmail.main import main

main()
