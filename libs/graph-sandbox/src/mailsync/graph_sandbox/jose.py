"""Just enough JOSE for the identity platform: RS256 JSON Web Tokens and a JSON Web Key Set.

Tokens are signed with an RSA key generated at start-up; its public half is served at
``/{tenant}/discovery/v2.0/keys`` (the ``jwks_uri`` of the OpenID configuration), so clients can verify
id_tokens and Graph can verify access tokens with real signatures.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Inverse of :func:`b64url`; raises ``ValueError`` on malformed input."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError("malformed base64url") from exc


def _uint(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class TokenInvalidError(Exception):
    """A JWT that is malformed or whose signature doesn't verify."""


class SigningKey:
    """An RSA key pair with a key id, signing RS256 JWTs."""

    def __init__(self, private_key: rsa.RSAPrivateKey | None = None, kid: str | None = None) -> None:
        self._key = private_key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = kid or b64url(secrets.token_bytes(20))

    def sign(self, claims: dict[str, Any]) -> str:
        """A compact JWS of ``claims`` with header ``{"typ": "JWT", "alg": "RS256", "kid"}``."""
        header = {"typ": "JWT", "alg": "RS256", "kid": self.kid}
        signing_input = (
            f"{b64url(json.dumps(header, separators=(',', ':')).encode())}."
            f"{b64url(json.dumps(claims, separators=(',', ':')).encode())}"
        )
        signature = self._key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64url(signature)}"

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a token this key signed. Raises :class:`TokenInvalidError` otherwise."""
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenInvalidError("IDX14100: JWT is not well formed, there are no dots (.).")
        try:
            header = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
            signature = b64url_decode(parts[2])
        except ValueError as exc:
            raise TokenInvalidError("IDX14102: Unable to decode the header or payload as Base64Url.") from exc
        if not isinstance(header, dict) or header.get("alg") != "RS256" or header.get("kid") != self.kid:
            raise TokenInvalidError(
                "IDX10503: Signature validation failed. Token does not have a kid we know."
            )
        try:
            self._key.public_key().verify(
                signature, f"{parts[0]}.{parts[1]}".encode("ascii"), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature as exc:
            raise TokenInvalidError("IDX10511: Signature validation failed.") from exc
        if not isinstance(claims, dict):
            raise TokenInvalidError("IDX14102: The payload is not a JSON object.")
        return claims

    def jwk(self) -> dict[str, Any]:
        """The public key as a JWK, in the shape Entra's keys endpoint serves."""
        numbers = self._key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": _uint(numbers.n),
            "e": _uint(numbers.e),
        }


def unverified_claims(token: str) -> dict[str, Any]:
    """Decode a JWT's payload without verifying it (for tests reading id_tokens)."""
    payload = json.loads(b64url_decode(token.split(".")[1]))
    if not isinstance(payload, dict):
        raise TypeError("JWT payload is not an object")
    return payload
