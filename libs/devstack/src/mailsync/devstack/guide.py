"""The guide `make run` prints once the product is up: what runs where, and what to look at first."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailsync.devstack.product import Product
    from mailsync.devstack.seed import DemoWorld


def describe(product: Product, world: DemoWorld, seconds: float) -> str:
    """The guide text: services, conversations with example curls, sandbox mailboxes, metrics, docs."""
    e = product.endpoints
    run_dir = product.stack.run_dir
    sub = world.subaccount_id
    gmail, outlook = world.gmail_user, world.outlook_user
    conversation = f"{e.router_url}/v1/subaccounts/{sub}"
    lines = [
        f"mailsync is running in sandbox mode ({seconds:.1f} s to ready). Ctrl-C stops everything.",
        "",
        "Services (GET /healthz /readyz /metrics; logs in the run directory):",
        *(f"  {s.name:<15} {s.url}  log: {run_dir / s.name}.log" for s in product.services),
        "",
        f"Seeded: subaccount {sub}",
        f"  user {gmail.user_id} <{gmail.address}>   Gmail connection {gmail.connection_id}",
        f"  user {outlook.user_id} <{outlook.address}>   Outlook connection {outlook.connection_id}",
        *(
            f"  contact {c.contact_id} <{c.address}> assigned to {u.user_id}"
            for c, u in ((world.gmail_contact, gmail), (world.outlook_contact, outlook))
        ),
        "",
        "CRM conversations (router read API), filling up as the traffic below flows:",
        f"  curl -s '{conversation}/contacts/{world.gmail_contact.contact_id}/messages?order=desc&limit=5'",
        f"  curl -s '{conversation}/contacts/{world.outlook_contact.contact_id}/messages?order=desc&limit=5'",
        "",
        "The mailboxes, as the providers see them (sandbox admin APIs):",
        f"  curl -s {e.gmail_sandbox_url}/_admin/mailboxes/{gmail.address}/messages",
        f"  curl -s {e.gmail_sandbox_url}/_admin/mailboxes/{gmail.address}/threads",
        f"  curl -s {e.graph_sandbox_http_url}/_admin/mailboxes/{outlook.address}/folders/sentitems/messages",
        f"  curl -s {e.graph_sandbox_http_url}/_admin/mailboxes/{outlook.address}/folders/inbox/messages",
        f"  subaccount SMTP provider (bulk mail): 127.0.0.1:{e.smtp_port}",
        "",
        "Connection status (C3):",
        f"  curl -s {e.ingest_gmail_url}/v1/connections/{gmail.connection_id}",
        f"  curl -s {e.ingest_outlook_url}/v1/connections/{outlook.connection_id}",
        "",
        "Metrics: curl -s <service URL>/metrics (meanings in docs/operations.md).",
        "Contracts: docs/contracts.md; AsyncAPI documents per service in docs/asyncapi/.",
        "",
        "Stack:",
        *(f"  {name}={value}" for name, value in product.stack.env().items()),
        f"  run directory {run_dir}",
        "",
        "Traffic (a round every few seconds):",
    ]
    return "\n".join(lines) + "\n"
