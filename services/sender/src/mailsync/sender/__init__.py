"""mailsync sender: Delivers CRM send commands through the user's mailbox or the subaccount provider."""
