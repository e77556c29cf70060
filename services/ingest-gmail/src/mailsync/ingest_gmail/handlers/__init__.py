"""Use cases of ingest-gmail: connection lifecycle, credentials, notifications, mailbox sync, maintenance."""
