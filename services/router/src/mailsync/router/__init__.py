"""mailsync router: Files canonical mail events in the right CRM conversation, contact and subaccount."""
