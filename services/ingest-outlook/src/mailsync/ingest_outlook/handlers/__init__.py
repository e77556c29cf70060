"""Use cases of ingest-outlook."""
