"""Tokens encrypted at rest with AES-256-GCM, under a keyring so keys can rotate.

Each ciphertext is stored as ``{"kid", "nonce", "ct"}``: the key id travels with it, so a new current key can
be introduced while older ciphertexts still decrypt with their own key (old ids stay in the keyring until
every record has been re-encrypted; a record is re-encrypted under the current key whenever it is written,
e.g. on the next token refresh). The connection id is bound as associated data, so a ciphertext copied to
another connection's record does not decrypt. Plaintext tokens are never logged or stored.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_BYTES = 12


class TokenKeyError(RuntimeError):
    """No usable key: the keyring is empty, a key is malformed, or a ciphertext's key id is unknown."""


def decode_key(value: str) -> bytes:
    """A keyring entry: 32 bytes, base64 (standard or URL-safe alphabet)."""
    try:
        key = base64.urlsafe_b64decode(value.replace("+", "-").replace("/", "_") + "==")
    except (binascii.Error, ValueError) as error:
        raise TokenKeyError("token key is not base64") from error
    if len(key) != 32:
        raise TokenKeyError("token key must be 32 bytes (AES-256)")
    return key


class TokenCipher:
    """Encrypts and decrypts tokens with the keyring; see the module docstring."""

    def __init__(self, keys: Mapping[str, bytes], current_key_id: str | None) -> None:
        self._keys = {kid: AESGCM(key) for kid, key in keys.items()}
        if current_key_id is not None and current_key_id not in self._keys:
            raise TokenKeyError(f"current token key id {current_key_id!r} is not in the keyring")
        self._current = current_key_id

    @property
    def configured(self) -> bool:
        """Whether tokens can be encrypted (a current key exists)."""
        return self._current is not None

    def encrypt(self, plaintext: str, *, bound_to: str) -> dict[str, Any]:
        """Encrypt under the current key; ``bound_to`` (the connection id) is authenticated, not stored."""
        if self._current is None:
            raise TokenKeyError("no token encryption key configured (MAILSYNC_TOKEN_KEYS)")
        nonce = os.urandom(_NONCE_BYTES)
        ciphertext = self._keys[self._current].encrypt(nonce, plaintext.encode(), bound_to.encode())
        return {"kid": self._current, "nonce": nonce, "ct": ciphertext}

    def decrypt(self, sealed: Mapping[str, Any], *, bound_to: str) -> str:
        """Decrypt a value written by :meth:`encrypt` for the same ``bound_to``."""
        aead = self._keys.get(str(sealed.get("kid")))
        if aead is None:
            raise TokenKeyError(f"token key {sealed.get('kid')!r} is not in the keyring")
        try:
            plaintext = aead.decrypt(bytes(sealed["nonce"]), bytes(sealed["ct"]), bound_to.encode())
        except InvalidTag as error:
            raise TokenKeyError("token ciphertext does not authenticate") from error
        return plaintext.decode()
