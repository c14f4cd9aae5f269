"""Reminders, included by project/urls.py under api/v1/reminders (no trailing slash, as the
issue writes it; before api/: its catch-all 404s)."""

from django.urls import path

from notifications.api import reminders

urlpatterns = [
    path("", reminders.reminder_list, name="reminders"),
    path("/<int:reminder_id>", reminders.reminder_detail, name="reminder"),
]
