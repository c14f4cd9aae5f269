from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class TasksConfig(AppConfig):
    name = "tasks"
    verbose_name = "Jobs"

    def ready(self) -> None:
        # The worker's maintenance loop hooks into Celery's worker signals.
        from tasks import worker  # noqa: F401

        # Every process (web, worker, beat, shell) knows every job type, not only workers.
        autodiscover_modules("jobs")
