"""Change-notification subscriptions on Outlook messages: the rules, without the HTTP.

From ``resources/subscription.md``, ``api/subscription-post-subscriptions.md``,
``concepts/change-notifications-delivery-webhooks.md`` and the
``change-notifications-subscription-lifetime`` include:

* ``resource`` is relative (no base URL): ``me/messages``, ``me/mailFolders('inbox')/messages``,
  ``users/{id|upn}/messages``, ``users/{id}/mailFolders/{id}/messages`` (folder names and ids both work).
  Delegated tokens may only watch the signed-in user's mailbox.
* ``changeType`` is a comma list of ``created``, ``updated``, ``deleted``. ``clientState`` is at most 128
  characters.
* Maximum lifetime for Outlook messages: 10,080 minutes (under 7 days); 1,440 with ``includeResourceData``
  (not supported by the sandbox: rich notifications need encryption). An expiration less than 45 minutes out
  is raised to 45 minutes. A later one is a 400.
* ``lifecycleNotificationUrl`` can only be set at creation; PATCH renews ``expirationDateTime``.
* A notification for a folder-scoped subscription says ``created`` when a message enters the folder (new or
  moved in), ``deleted`` when it leaves (deleted or moved out), ``updated`` when it changes in place; a
  mailbox-wide subscription sees moves as ``updated``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from mailsync.graph_sandbox import identifiers
from mailsync.graph_sandbox.clock import parse_graph_timestamp, to_graph_precise_timestamp
from mailsync.graph_sandbox.directory import Directory
from mailsync.graph_sandbox.errors import GraphError, bad_request
from mailsync.graph_sandbox.mailbox import Change, ChangeKind, Mailbox

MAX_LIFETIME = dt.timedelta(minutes=10080)
MIN_LIFETIME = dt.timedelta(minutes=45)
CHANGE_TYPES = frozenset({"created", "updated", "deleted"})
LIFECYCLE_EVENTS = frozenset({"reauthorizationRequired", "subscriptionRemoved", "missed"})

_RESOURCE = re.compile(
    r"^/?(?:(?P<me>me)|users/(?P<user>[^/]+?)|users\('(?P<quoted_user>[^']+)'\))"
    r"(?:/mailfolders(?:/(?P<folder>[^/()]+)|\('(?P<quoted_folder>[^']+)'\)))?/messages/?$",
    re.IGNORECASE,
)


@dataclasses.dataclass
class Subscription:
    """An active subscription."""

    id: str
    resource: str
    change_types: frozenset[str]
    notification_url: str
    lifecycle_notification_url: str | None
    client_state: str | None
    expiration: dt.datetime
    application_id: str
    creator_id: str
    mailbox_id: str
    folder_id: str | None
    latest_supported_tls_version: str = "v1_2"

    def to_json(self) -> dict[str, Any]:
        """The ``subscription`` resource (without ``@odata.context``)."""
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.application_id,
            "changeType": ",".join(t for t in ("created", "updated", "deleted") if t in self.change_types),
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": self.lifecycle_notification_url,
            "expirationDateTime": to_graph_precise_timestamp(self.expiration),
            "creatorId": self.creator_id,
            "includeResourceData": None,
            "latestSupportedTlsVersion": self.latest_supported_tls_version,
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationUrlAppId": None,
        }


@dataclasses.dataclass(frozen=True)
class SubscriptionRequest:
    """A validated create request, before the endpoint handshake."""

    resource: str
    change_types: frozenset[str]
    notification_url: str
    lifecycle_notification_url: str | None
    client_state: str | None
    expiration: dt.datetime
    mailbox: Mailbox
    folder_id: str | None


def _invalid(message: str) -> GraphError:
    return bad_request(message, "InvalidRequest")


def resolve_resource(directory: Directory, resource: str, signed_in_user: str) -> tuple[Mailbox, str | None]:
    """The mailbox and folder (None: the whole mailbox) a resource names.

    Raises 400 for an unsupported resource, 404 for an unknown user or folder, 403 for someone else's mailbox.
    """
    found = _RESOURCE.match(resource.strip())
    if found is None:
        raise _invalid(f"Unsupported resource '{resource}'. The sandbox supports Outlook message resources.")
    if found["me"]:
        mailbox = directory.find(signed_in_user)
    else:
        mailbox = directory.find(found["user"] or found["quoted_user"])
    if mailbox is None:
        raise GraphError(404, "ResourceNotFound", f"Resource '{resource}' was not found.")
    if mailbox.user_id != signed_in_user:
        raise GraphError(
            403,
            "ExtensionError",
            "Operation: Create; Exception: [Status Code: Forbidden; Reason: "
            "Access is denied. Check credentials and try again.]",
        )
    folder_ref = found["folder"] or found["quoted_folder"]
    if folder_ref is None:
        return mailbox, None
    folder = mailbox.folder(folder_ref)
    if folder is None:
        raise GraphError(404, "ResourceNotFound", f"Resource '{resource}' was not found.")
    return mailbox, folder.id


def _url(value: Any, field: str, *, allow_http: bool) -> str:
    if not isinstance(value, str) or not value:
        raise _invalid(f"'{field}' is required.")
    parts = urlsplit(value)
    if parts.scheme != "https" and not (allow_http and parts.scheme == "http"):
        raise _invalid(f"The {field} must be an https URL: '{value}'.")
    if not parts.hostname:
        raise _invalid(f"Invalid {field}: '{value}'.")
    return value


def expiration_within_limits(requested: Any, now: dt.datetime) -> dt.datetime:
    """Check ``expirationDateTime`` against the Outlook message limits; raises Graph's 400 when too far."""
    if not isinstance(requested, str):
        raise _invalid("'expirationDateTime' is required.")
    try:
        value = parse_graph_timestamp(requested)
    except ValueError as exc:
        raise _invalid(f"Invalid expirationDateTime '{requested}'.") from exc
    if value <= now:
        raise _invalid("Subscription expiration must be in the future.")
    if value - now > MAX_LIFETIME:
        raise _invalid(
            f"Subscription expiration can only be {int(MAX_LIFETIME.total_seconds() // 60)} minutes in the "
            "future."
        )
    return max(value, now + MIN_LIFETIME)


def parse_create_request(
    payload: Any, *, directory: Directory, signed_in_user: str, now: dt.datetime, allow_http: bool
) -> SubscriptionRequest:
    """Validate a ``POST /subscriptions`` body. The endpoint handshake comes after this."""
    if not isinstance(payload, dict):
        raise _invalid("The request body must be a subscription object.")
    if payload.get("includeResourceData"):
        raise _invalid(
            "The sandbox does not support rich notifications (includeResourceData needs an encryption "
            "certificate and encrypted content)."
        )
    raw_types = payload.get("changeType")
    if not isinstance(raw_types, str) or not raw_types.strip():
        raise _invalid("'changeType' is required.")
    change_types = frozenset(t.strip() for t in raw_types.split(","))
    if not change_types <= CHANGE_TYPES:
        raise _invalid(f"Invalid 'changeType' attribute: '{raw_types}'.")
    client_state = payload.get("clientState")
    if client_state is not None and (not isinstance(client_state, str) or len(client_state) > 128):
        raise _invalid("'clientState' must be a string of at most 128 characters.")
    resource = payload.get("resource")
    if not isinstance(resource, str):
        raise _invalid("'resource' is required.")
    mailbox, folder_id = resolve_resource(directory, resource, signed_in_user)
    lifecycle = payload.get("lifecycleNotificationUrl")
    return SubscriptionRequest(
        resource=resource,
        change_types=change_types,
        notification_url=_url(payload.get("notificationUrl"), "notificationUrl", allow_http=allow_http),
        lifecycle_notification_url=None
        if lifecycle is None
        else _url(lifecycle, "lifecycleNotificationUrl", allow_http=allow_http),
        client_state=client_state,
        expiration=expiration_within_limits(payload.get("expirationDateTime"), now),
        mailbox=mailbox,
        folder_id=folder_id,
    )


def change_type_for(subscription: Subscription, change: Change) -> str | None:
    """The changeType ``subscription`` is told about for ``change``, or None when it's not told."""
    folder = subscription.folder_id
    if folder is None:
        kind = {
            ChangeKind.CREATED: "created",
            ChangeKind.UPDATED: "updated",
            ChangeKind.MOVED: "updated",
            ChangeKind.DELETED: "deleted",
        }[change.kind]
    elif change.new_folder_id == folder and change.old_folder_id != folder:
        kind = "created"
    elif change.old_folder_id == folder and change.new_folder_id != folder:
        kind = "deleted"
    elif change.old_folder_id == folder == change.new_folder_id:
        kind = "updated"
    else:
        return None
    return kind if kind in subscription.change_types else None


class SubscriptionRegistry:
    """Active subscriptions. Expired ones disappear lazily (reads and matching skip them)."""

    def __init__(self, clock: Callable[[], dt.datetime]) -> None:
        self._clock = clock
        self._subscriptions: dict[str, Subscription] = {}

    def add(self, request: SubscriptionRequest, *, application_id: str, creator_id: str) -> Subscription:
        """Store a subscription whose endpoints passed validation."""
        subscription = Subscription(
            id=identifiers.new_guid(),
            resource=request.resource,
            change_types=request.change_types,
            notification_url=request.notification_url,
            lifecycle_notification_url=request.lifecycle_notification_url,
            client_state=request.client_state,
            expiration=request.expiration,
            application_id=application_id,
            creator_id=creator_id,
            mailbox_id=request.mailbox.user_id,
            folder_id=request.folder_id,
        )
        self._subscriptions[subscription.id] = subscription
        return subscription

    def _purge(self) -> None:
        now = self._clock()
        for sub_id in [s.id for s in self._subscriptions.values() if s.expiration <= now]:
            del self._subscriptions[sub_id]

    def get(self, subscription_id: str) -> Subscription:
        """An active subscription; 404 ``ResourceNotFound`` otherwise."""
        self._purge()
        subscription = self._subscriptions.get(subscription_id)
        if subscription is None:
            raise GraphError(404, "ResourceNotFound", "The object was not found.")
        return subscription

    def remove(self, subscription_id: str) -> Subscription:
        """Delete a subscription; 404 when unknown."""
        subscription = self.get(subscription_id)
        del self._subscriptions[subscription_id]
        return subscription

    def active(self) -> list[Subscription]:
        """Every unexpired subscription."""
        self._purge()
        return list(self._subscriptions.values())

    def for_mailbox(self, mailbox_id: str) -> list[Subscription]:
        """Unexpired subscriptions watching ``mailbox_id``."""
        return [s for s in self.active() if s.mailbox_id == mailbox_id]

    def clear(self) -> None:
        """Drop every subscription."""
        self._subscriptions.clear()


def change_notification(
    subscription: Subscription, mailbox: Mailbox, change: Change, change_type: str, tenant_id: str
) -> dict[str, Any]:
    """One entry of a change notification's ``value`` array (``changeNotification`` resource)."""
    path = f"Users/{mailbox.user_id}/Messages/{change.message_id}"
    item: dict[str, Any] = {
        "subscriptionId": subscription.id,
        "subscriptionExpirationDateTime": to_graph_precise_timestamp(subscription.expiration),
        "changeType": change_type,
        "resource": path,
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Message",
            "@odata.id": path,
            "@odata.etag": f'W/"{change.change_key}"',
            "id": change.message_id,
        },
        "tenantId": tenant_id,
    }
    if subscription.client_state is not None:
        item["clientState"] = subscription.client_state
    return item


def lifecycle_notification(subscription: Subscription, event: str, tenant_id: str) -> dict[str, Any]:
    """One entry of a lifecycle notification's ``value`` array."""
    if event not in LIFECYCLE_EVENTS:
        raise ValueError(f"unknown lifecycle event {event!r}")
    item: dict[str, Any] = {
        "subscriptionId": subscription.id,
        "subscriptionExpirationDateTime": to_graph_precise_timestamp(subscription.expiration),
        "tenantId": tenant_id,
        "lifecycleEvent": event,
    }
    if subscription.client_state is not None:
        item["clientState"] = subscription.client_state
    return item
