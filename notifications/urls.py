"""The notifications' inbox API, included by project/urls.py under api/v1/ (before api/,
whose catch-all 404s): /api/v1/notifications with no trailing slash, as the issue writes it,
and no route beginning with a slash (Django's urls.W002)."""

from django.urls import path

from notifications.api import inbox

urlpatterns = [
    path("notifications", inbox.inbox, name="notifications-inbox"),
    path("notifications/read-all", inbox.mark_all_read, name="notifications-read-all"),
    path("notifications/<int:item_id>/read", inbox.mark_read, name="notifications-read"),
]
