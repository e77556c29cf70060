"""Settings of one sandbox instance. Only the composition root reads them."""

from __future__ import annotations

import dataclasses
import datetime as dt

from mailsync.graph_sandbox.clock import Clock, SystemClock
from mailsync.graph_sandbox.notifications import DeliveryPolicy
from mailsync.graph_sandbox.throttling import ThrottlePolicy

DEFAULT_TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"


@dataclasses.dataclass(frozen=True)
class DefaultApp:
    """The app registration created at start-up, so clients work without an admin call first."""

    client_id: str = "6731de76-14a6-49ae-97bc-6eba6914391e"
    client_secret: str = "sandbox-client-secret"  # noqa: S105 - a published test credential
    redirect_uris: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class SandboxConfig:
    """Everything :func:`~mailsync.graph_sandbox.app.create_app` needs.

    ``clock`` drives every time rule; pass a :class:`~mailsync.graph_sandbox.clock.ManualClock` in tests.
    ``allow_http_notification_urls`` relaxes Graph's https-only rule for local subscribers (default on, since
    local test endpoints rarely have certificates; set it False to enforce the real rule).
    ``admin_enabled`` mounts the ``/_admin/`` API (never expose it beyond loopback).
    """

    tenant_id: str = DEFAULT_TENANT_ID
    tenant_domain: str = "sandbox.onmicrosoft.com"
    message_id_host: str = "SA1PR00MB0001.namprd00.prod.outlook.com"
    default_app: DefaultApp = dataclasses.field(default_factory=DefaultApp)
    clock: Clock = dataclasses.field(default_factory=SystemClock)
    access_token_lifetime: dt.timedelta = dt.timedelta(seconds=3599)
    token_clock_skew: dt.timedelta = dt.timedelta(minutes=5)
    throttle: ThrottlePolicy = dataclasses.field(default_factory=ThrottlePolicy)
    delivery: DeliveryPolicy = dataclasses.field(default_factory=DeliveryPolicy)
    dispatch_poll_interval_s: float = 0.05
    sync_state_capacity: int = 10_000
    inline_attachment_max_bytes: int = 3 * 1024 * 1024
    allow_http_notification_urls: bool = True
    fault_seed: int = 0
    admin_enabled: bool = True
