from django.core.management.base import BaseCommand

from tasks.scheduling.defaults import install_default_schedules


class Command(BaseCommand):
    help = "Install the default schedules that are missing; never overwrites an admin's edit."

    def handle(self, *args, **options) -> None:
        created, kept = install_default_schedules()
        self.stdout.write(
            f"schedules: {len(created)} created ({', '.join(created) or '-'}), "
            f"{len(kept)} already present"
        )
