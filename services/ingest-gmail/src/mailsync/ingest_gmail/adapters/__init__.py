"""Adapters of ingest-gmail: MongoDB stores, GridFS blobs, the Gmail/OAuth HTTP client, Pub/Sub, crypto."""
