"""Pure rules of the Outlook intake: connections, notifications, subscriptions, message mapping (no I/O)."""
