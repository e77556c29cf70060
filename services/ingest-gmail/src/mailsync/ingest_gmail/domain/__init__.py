"""Pure rules of Gmail intake: connections and their grants, sync decisions, notifications, MIME parsing.

Nothing here performs I/O: no HTTP, database, broker or clock. Time is always passed in.
"""
