from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "tasks.api"
    label = "jobyard_api"
    verbose_name = "Jobs API"

    def ready(self) -> None:
        # Its signal receivers: a token revoked or deleted leaves the API's cache at once.
        from tasks.api import tokens  # noqa: F401
        from tasks.api.groups import paths
        from tasks.api.openapi import api_paths

        api_paths(paths)
