"""The notifications' API, included by project/urls.py under api/v1/notifications."""

from django.urls import path

from notifications.api import inbox

urlpatterns = [
    path("", inbox.inbox, name="notifications-inbox"),
    path("/read-all", inbox.mark_all_read, name="notifications-read-all"),
    path("/<int:item_id>/read", inbox.mark_read, name="notifications-read"),
]
