"""Reminders, included by project/urls.py under api/v1/ (before api/, whose catch-all 404s):
/api/v1/reminders with no trailing slash, as the issue writes it, and no route beginning
with a slash (Django's urls.W002)."""

from django.urls import path

from notifications.api import reminders

urlpatterns = [
    path("reminders", reminders.reminder_list, name="reminders"),
    path("reminders/<int:reminder_id>", reminders.reminder_detail, name="reminder"),
]
