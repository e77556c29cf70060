"""Adapters of ingest-outlook: MongoDB, GridFS, MSAL, Microsoft Graph and AES-GCM."""
