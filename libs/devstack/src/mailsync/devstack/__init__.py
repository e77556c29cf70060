"""Starts the real local infrastructure (Kafka, a MongoDB-wire server, the Pub/Sub emulator).

Entry points: :class:`mailsync.devstack.stack.Stack` (library), ``mailsync-devstack`` (CLI, in
:mod:`mailsync.devstack.cli`) and the pytest plugin :mod:`mailsync.devstack.pytest_plugin`. Nothing is
re-exported here, so that loading the pytest plugin stays cheap for test runs that need no server.
"""
