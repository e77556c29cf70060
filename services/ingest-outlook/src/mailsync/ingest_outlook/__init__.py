"""mailsync ingest-outlook: Turns Outlook mailbox changes into canonical mail events on Kafka."""
