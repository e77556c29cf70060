"""The sender's adapters: MongoDB stores, the ingest services' token API, Gmail over HTTP, SMTP."""
