from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "tasks.api"
    label = "jobyard_api"
    verbose_name = "Jobs API"
