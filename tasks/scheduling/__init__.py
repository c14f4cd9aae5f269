"""Schedules: cron, interval and one-off jobs kept by celery-beat in the database."""
