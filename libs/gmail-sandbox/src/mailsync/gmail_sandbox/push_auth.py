"""OIDC tokens like the ones Pub/Sub push puts in ``Authorization: Bearer``, and the certs to verify them.

Real push subscriptions with authentication sign a Google OIDC ID token (RS256, ``kid`` header) whose claims
are ``iss`` ``https://accounts.google.com``, ``aud`` (the configured audience, by default the push endpoint
URL), ``azp``, ``email`` (the push service account), ``email_verified``, ``sub``, ``iat`` and ``exp`` (one
hour). Google publishes the keys at ``https://www.googleapis.com/oauth2/v1/certs`` (``{kid: PEM x509
certificate}``) and ``/oauth2/v3/certs`` (a JWK set). Sources:
https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions, google-auth
``google/oauth2/id_token.py``.

The sandbox generates a fresh RSA key when it starts, signs with google-auth's own ``crypt``/``jwt`` modules
and serves both cert formats, so ``google.oauth2.id_token.verify_token(token, request, audience=...,
certs_url=<sandbox>/oauth2/v1/certs)`` verifies real signatures. (That helper does not check ``iss``; a push
endpoint must.)
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import time
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

GOOGLE_ISSUER = "https://accounts.google.com"
TOKEN_LIFETIME = 3600


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class PushTokenSigner:
    """Signs push-style OIDC tokens with a key generated at construction time."""

    def __init__(self, service_account_email: str, now: float) -> None:
        self.service_account_email = service_account_email
        self.subject = str(100_000_000_000_000_000_000 + secrets.randbelow(10**20))
        self.key_id = secrets.token_hex(20)
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        # google-auth's crypt and jwt functions carry no annotations.
        self._signer = crypt.RSASigner.from_string(pem, key_id=self.key_id)  # type: ignore[no-untyped-call]
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailsync-gmail-sandbox")])
        issued = dt.datetime.fromtimestamp(now, tz=dt.UTC)
        self._certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(issued - dt.timedelta(days=1))
            .not_valid_after(issued + dt.timedelta(days=30))
            .sign(self._key, hashes.SHA256())
        )

    def sign(
        self,
        audience: str,
        *,
        issued_at: float | None = None,
        email: str | None = None,
        lifetime: int = TOKEN_LIFETIME,
    ) -> str:
        """Return a signed token for ``audience`` (``email`` defaults to the push service account).

        ``issued_at`` defaults to the real wall clock, not the sandbox clock: verifiers check ``iat``/``exp``
        against real time, so a token stamped with a simulated time would be rejected.
        """
        issued = int(time.time() if issued_at is None else issued_at)
        claims: dict[str, Any] = {
            "iss": GOOGLE_ISSUER,
            "aud": audience,
            "azp": self.subject,
            "email": email or self.service_account_email,
            "email_verified": True,
            "sub": self.subject,
            "iat": issued,
            "exp": issued + lifetime,
        }
        token = jwt.encode(self._signer, claims)  # type: ignore[no-untyped-call]
        return token.decode("ascii") if isinstance(token, bytes) else str(token)

    def pem_certs(self) -> dict[str, str]:
        """The ``/oauth2/v1/certs`` body: ``{kid: PEM certificate}``."""
        return {self.key_id: self._certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")}

    def jwks(self) -> dict[str, Any]:
        """The ``/oauth2/v3/certs`` body: a JWK set."""
        numbers = self._key.public_key().public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "alg": "RS256",
                    "use": "sig",
                    "kid": self.key_id,
                    "n": _b64url_uint(numbers.n),
                    "e": _b64url_uint(numbers.e),
                }
            ]
        }
