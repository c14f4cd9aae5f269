"""Alerts: rules read the platform's figures (rules.py, plain functions of a snapshot);
episodes open, update and resolve `Alert` rows and tell people (episodes.py). `check()`
is one turn, run every minute by the `check-alerts` job. docs/notifications.md, "Alerts"."""

from notifications.alerts.episodes import check

__all__ = ["check"]
