from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class TasksConfig(AppConfig):
    name = "tasks"
    verbose_name = "Jobs"

    def ready(self) -> None:
        # Before any jobs module: each job type's Celery task is made as it is declared.
        from tasks.worker import install

        install()

        # Every process (web, worker, beat, shell) knows every job type and every plain
        # Celery task (an app's tasks.py), not only workers: a sender validates what it
        # sends and knows a task's retry budget.
        autodiscover_modules("jobs", "tasks")
