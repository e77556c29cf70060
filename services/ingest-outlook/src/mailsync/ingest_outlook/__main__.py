"""`python -m mailsync.ingest_outlook` runs the service."""

from mailsync.ingest_outlook.main import main

main()
