from django.apps import AppConfig


class JobappConfig(AppConfig):
    name = "tests.jobapp"
    label = "jobapp"

    def ready(self) -> None:
        # A plain Celery task (not a job type): every process registers it, the beat's too.
        from tests.jobapp import beat_tasks  # noqa: F401
