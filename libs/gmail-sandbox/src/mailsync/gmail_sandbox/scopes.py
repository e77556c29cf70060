"""OAuth scopes each Gmail method accepts, copied from the ``scopes`` lists of the ``gmail.v1.json`` discovery
document (revision 20261005). A token needs any one of them; ``gmail.metadata`` alone additionally forbids
bodies (``format=full/raw``) and the ``q`` search parameter.
"""

from __future__ import annotations

from typing import Final

_PREFIX = "https://www.googleapis.com/auth/"
FULL: Final = "https://mail.google.com/"
READONLY: Final = _PREFIX + "gmail.readonly"
MODIFY: Final = _PREFIX + "gmail.modify"
METADATA: Final = _PREFIX + "gmail.metadata"
SEND: Final = _PREFIX + "gmail.send"
COMPOSE: Final = _PREFIX + "gmail.compose"
INSERT: Final = _PREFIX + "gmail.insert"
LABELS: Final = _PREFIX + "gmail.labels"
_ADDON_ACTION = _PREFIX + "gmail.addons.current.message.action"
_ADDON_METADATA = _PREFIX + "gmail.addons.current.message.metadata"
_ADDON_READONLY = _PREFIX + "gmail.addons.current.message.readonly"
_ADDON_COMPOSE = _PREFIX + "gmail.addons.current.action.compose"

GMAIL_SCOPES: Final = frozenset(
    {FULL, READONLY, MODIFY, METADATA, SEND, COMPOSE, INSERT, LABELS, _PREFIX + "gmail.settings.basic"}
)

_READ = frozenset({FULL, METADATA, MODIFY, READONLY})

METHOD_SCOPES: Final[dict[str, frozenset[str]]] = {
    "gmail.users.getProfile": _READ | {COMPOSE},
    "gmail.users.watch": _READ,
    "gmail.users.stop": _READ,
    "gmail.users.history.list": _READ,
    "gmail.users.labels.list": _READ | {LABELS},
    "gmail.users.labels.get": _READ | {LABELS},
    "gmail.users.labels.create": frozenset({FULL, LABELS, MODIFY}),
    "gmail.users.messages.list": _READ,
    "gmail.users.messages.get": _READ | {_ADDON_ACTION, _ADDON_METADATA, _ADDON_READONLY},
    "gmail.users.messages.attachments.get": frozenset(
        {FULL, MODIFY, READONLY, _ADDON_ACTION, _ADDON_READONLY}
    ),
    "gmail.users.messages.send": frozenset({FULL, COMPOSE, MODIFY, SEND, _ADDON_COMPOSE}),
    "gmail.users.messages.insert": frozenset({FULL, INSERT, MODIFY}),
    "gmail.users.messages.import": frozenset({FULL, INSERT, MODIFY}),
    "gmail.users.messages.modify": frozenset({FULL, MODIFY}),
    "gmail.users.messages.trash": frozenset({FULL, MODIFY}),
    "gmail.users.messages.untrash": frozenset({FULL, MODIFY}),
    "gmail.users.messages.delete": frozenset({FULL}),
    "gmail.users.threads.get": _READ | {_ADDON_ACTION, _ADDON_METADATA, _ADDON_READONLY},
    "gmail.users.threads.list": _READ,
}


def metadata_only(granted: frozenset[str]) -> bool:
    """Whether the only read access the token has is ``gmail.metadata`` (no bodies, no ``q``)."""
    return METADATA in granted and not (granted & {FULL, READONLY, MODIFY})
