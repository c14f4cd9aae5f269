from django.apps import AppConfig


class JobappConfig(AppConfig):
    name = "tests.jobapp"
    label = "jobapp"
