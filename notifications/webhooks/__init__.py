"""Webhooks: signing (signing.py), the SSRF guard (guard.py), one attempt of a delivery
(delivery.py), making deliveries from events (service.py) and the event sources: the
platform's job events and the catalog's outbox (sources.py). docs/webhooks.md."""
