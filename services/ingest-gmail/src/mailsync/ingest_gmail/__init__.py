"""mailsync ingest-gmail: Turns Gmail mailbox changes into canonical mail events on Kafka."""
