"""Standard Webhooks signatures: HMAC-SHA256 over `{id}.{timestamp}.{body}`, base64,
sent as `webhook-signature: v1,<base64>` with `webhook-id` and `webhook-timestamp`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh endpoint secret, in Standard Webhooks' `whsec_<base64 of 32 bytes>` form."""
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def key_bytes(secret: str) -> bytes:
    """The HMAC key: a `whsec_` secret's decoded bytes, any other secret's UTF-8 bytes."""
    if secret.startswith(PREFIX):
        try:
            return base64.b64decode(secret[len(PREFIX) :], validate=True)
        except ValueError:
            pass  # not base64 after all: use it as it is, as the receiver's snippet does
    return secret.encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header's value for this message."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
        "user-agent": "Jobyard-Webhooks/1",
    }
