from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class TasksConfig(AppConfig):
    name = "tasks"
    verbose_name = "Jobs"

    def ready(self) -> None:
        # Before any jobs module: each job type's Celery task is made as it is declared.
        from tasks.worker import install

        install()

        # Every process (web, worker, beat, shell) knows every job type, not only workers.
        autodiscover_modules("jobs")
