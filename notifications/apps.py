from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"

    def ready(self) -> None:
        import tasks

        # Its endpoints in the OpenAPI document (/api/v1/openapi.json).
        from notifications.api.openapi import paths

        tasks.api_paths(paths)
