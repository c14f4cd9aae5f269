from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "catalog"

    def ready(self) -> None:
        import tasks
        from catalog.aggregation.dashboard import thirty_days

        # The admin dashboard's history past the registry's 24 hours (docs/aggregation.md).
        tasks.dashboard_section("30-days", "Last 30 days, per day",
                                "catalog/dashboard_30_days.html", thirty_days)  # fmt: skip
        # Its endpoints in the OpenAPI document (/api/v1/openapi.json).
        from catalog.api.openapi import paths

        tasks.api_paths(paths)
