"""One running sandbox: the components and the wiring between them.

A mailbox change flows: :class:`~mailsync.graph_sandbox.mailbox.Mailbox` records it, the
:class:`~mailsync.graph_sandbox.directory.Directory` forwards it here, matching subscriptions turn it into
change notifications, and the :class:`~mailsync.graph_sandbox.notifications.NotificationDispatcher` POSTs
them. Built only by the composition root.
"""

from __future__ import annotations

import datetime as dt
import logging

from mailsync.graph_sandbox.config import SandboxConfig
from mailsync.graph_sandbox.delta import SyncStateCache
from mailsync.graph_sandbox.directory import Directory
from mailsync.graph_sandbox.faults import FaultInjector
from mailsync.graph_sandbox.identity import AppRegistration, IdentityPlatform, Principal
from mailsync.graph_sandbox.jose import SigningKey
from mailsync.graph_sandbox.mailbox import Change, Mailbox
from mailsync.graph_sandbox.notifications import NotificationDispatcher
from mailsync.graph_sandbox.subscriptions import (
    Subscription,
    SubscriptionRegistry,
    change_notification,
    change_type_for,
    lifecycle_notification,
)
from mailsync.graph_sandbox.throttling import MailboxThrottle
from mailsync.graph_sandbox.uploads import UploadSessions

logger = logging.getLogger(__name__)


class Sandbox:
    """The state and services of one sandbox instance."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.clock = config.clock
        now = self.clock.now
        self.directory = Directory(
            tenant_id=config.tenant_id, message_id_host=config.message_id_host, clock=now
        )
        self.identity = IdentityPlatform(
            tenant_id=config.tenant_id,
            clock=now,
            signing_key=SigningKey(),
            access_token_lifetime=config.access_token_lifetime,
            token_clock_skew=config.token_clock_skew,
        )
        self.subscriptions = SubscriptionRegistry(now)
        self.dispatcher = NotificationDispatcher(clock=now, policy=config.delivery)
        self.sync_states = SyncStateCache(config.sync_state_capacity)
        self.throttle = MailboxThrottle(config.throttle, now)
        self.faults = FaultInjector(config.fault_seed)
        self.uploads = UploadSessions(now)
        self.directory.set_listener(self._on_mailbox_change)
        self.dispatcher.set_drop_callback(self._on_notification_dropped)
        self._register_default_app()

    def _register_default_app(self) -> None:
        app = self.config.default_app
        self.identity.register_app(AppRegistration(app.client_id, app.client_secret, app.redirect_uris))

    def create_mailbox(self, address: str, display_name: str = "", user_id: str | None = None) -> Mailbox:
        """Create a user who can sign in and has a mailbox."""
        mailbox = self.directory.create(address, display_name, user_id)
        self.identity.add_user(Principal(mailbox.user_id, mailbox.address, mailbox.display_name))
        return mailbox

    def _on_mailbox_change(self, mailbox: Mailbox, change: Change) -> None:
        for subscription in self.subscriptions.for_mailbox(mailbox.user_id):
            change_type = change_type_for(subscription, change)
            if change_type is None:
                continue
            item = change_notification(subscription, mailbox, change, change_type, self.config.tenant_id)
            self.dispatcher.enqueue(
                subscription.notification_url, item, subscription_id=subscription.id, kind="change"
            )

    def send_lifecycle(self, subscription: Subscription, event: str) -> bool:
        """Queue a lifecycle notification; False when the subscription has no lifecycle URL."""
        if subscription.lifecycle_notification_url is None:
            return False
        item = lifecycle_notification(subscription, event, self.config.tenant_id)
        self.dispatcher.enqueue(
            subscription.lifecycle_notification_url, item, subscription_id=subscription.id, kind="lifecycle"
        )
        return True

    def remove_subscription(self, subscription_id: str) -> Subscription:
        """Graph removes a subscription: it stops and ``subscriptionRemoved`` goes to its lifecycle URL."""
        subscription = self.subscriptions.remove(subscription_id)
        self.send_lifecycle(subscription, "subscriptionRemoved")
        return subscription

    def _on_notification_dropped(self, subscription_id: str, reason: str) -> None:
        subscription = next((s for s in self.subscriptions.active() if s.id == subscription_id), None)
        if subscription is None:
            return
        logger.info("notification for %s dropped (%s); sending 'missed'", subscription_id, reason)
        self.send_lifecycle(subscription, "missed")

    def revoke_user(self, user_id: str) -> list[Subscription]:
        """Password change / revoked sessions: refresh tokens die and the user's subscriptions get
        ``reauthorizationRequired``. Returns those subscriptions."""
        self.identity.revoke_sessions(user_id)
        affected = [s for s in self.subscriptions.active() if s.creator_id == user_id]
        for subscription in affected:
            self.send_lifecycle(subscription, "reauthorizationRequired")
        return affected

    def now(self) -> dt.datetime:
        """The sandbox's current time."""
        return self.clock.now()

    def reset(self) -> None:
        """Back to an empty tenant (the default app stays registered; signing keys are kept)."""
        self.directory = Directory(
            tenant_id=self.config.tenant_id, message_id_host=self.config.message_id_host, clock=self.clock.now
        )
        self.directory.set_listener(self._on_mailbox_change)
        self.identity = IdentityPlatform(
            tenant_id=self.config.tenant_id,
            clock=self.clock.now,
            signing_key=self.identity.signing_key,
            access_token_lifetime=self.config.access_token_lifetime,
            token_clock_skew=self.config.token_clock_skew,
        )
        self._register_default_app()
        self.subscriptions.clear()
        self.dispatcher.clear()
        self.sync_states.clear()
        self.throttle.reset()
        self.faults.clear()
        self.uploads.clear()
