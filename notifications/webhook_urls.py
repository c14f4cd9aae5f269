"""Webhooks, included by project/urls.py under api/v1/webhooks/ (before api/: its catch-all 404s)."""

from django.urls import path

from notifications.api import webhooks

urlpatterns = [
    path("endpoints", webhooks.endpoints, name="webhook-endpoints"),
    path("endpoints/<int:endpoint_id>", webhooks.endpoint_detail, name="webhook-endpoint"),
    path("endpoints/<int:endpoint_id>/ping", webhooks.endpoint_ping, name="webhook-endpoint-ping"),
    path("deliveries", webhooks.deliveries, name="webhook-deliveries"),
    path("deliveries/<int:delivery_id>", webhooks.delivery_detail, name="webhook-delivery"),
    path(
        "deliveries/<int:delivery_id>/replay",
        webhooks.delivery_replay,
        name="webhook-delivery-replay",
    ),  # fmt: skip
]
