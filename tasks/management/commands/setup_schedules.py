from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from tasks.scheduling.config import install_beat_schedule
from tasks.scheduling.defaults import install_default_schedules


class Command(BaseCommand):
    help = (
        "Install the default schedules and the CELERY_BEAT_SCHEDULE entries that are missing;"
        " never overwrites an admin's edit (an entry changed in the settings is installed again)."
    )

    def handle(self, *args, **options) -> None:
        created, kept = install_default_schedules()
        self.stdout.write(
            f"schedules: {len(created)} created ({', '.join(created) or '-'}), "
            f"{len(kept)} already present"
        )
        try:
            created, updated, kept = install_beat_schedule()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"CELERY_BEAT_SCHEDULE: {len(created)} created ({', '.join(created) or '-'}), "
            f"{len(updated)} updated ({', '.join(updated) or '-'}), {len(kept)} unchanged"
        )
