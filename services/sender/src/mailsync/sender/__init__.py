"""mailsync."""
