"""Channels: how a Message reaches its recipient. Each module has the same shape (healthchecks'
transports): `JOB_TYPE` (the delivery job's name), `recipient_for(obj)` (the address a
notify() recipient has on the channel, or DeliveryError), `send(message)` (returns the
provider id, or raises DeliveryError)."""

from __future__ import annotations

from types import ModuleType


class DeliveryError(Exception):
    """A send that failed. `permanent`: no retry can help (a 5xx, a bad address).
    `retry_after_ms`: the provider said when to come back (a 429's Retry-After)."""

    def __init__(self, message: str, permanent: bool = False,
                 retry_after_ms: int | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.permanent = permanent
        self.retry_after_ms = retry_after_ms


def channel(name: str) -> ModuleType:
    from notifications.channels import email, inapp, sms, whatsapp

    known = {"email": email, "inapp": inapp, "sms": sms, "whatsapp": whatsapp}
    if name not in known:
        raise ValueError(f"channels: unknown channel {name!r}; known: {', '.join(known)}")
    return known[name]
