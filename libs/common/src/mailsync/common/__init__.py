"""Contracts and small shared infrastructure of the mailsync services.

`mailsync.common.contracts` holds the public event and command models, topic names and their JSON Schemas.
The other modules are infrastructure every service composes in its `create_app(settings)`: settings,
structured logs, the Kafka broker factory and consumer delivery semantics, the MongoDB client factory, and
the HTTP shell (health, readiness, metrics). Nothing here opens a connection at import time.
"""
