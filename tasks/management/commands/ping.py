import time

from django.core.management.base import BaseCommand, CommandError

from tasks import WaitTimeout, enqueue


class Command(BaseCommand):
    help = "Send a ping job and print its round trip once a worker completes it."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait")

    def handle(self, *args, timeout: float, **options) -> None:
        sent = time.time()
        job = enqueue("ping", {"sent_at": sent})
        try:
            pong = job.wait_until_finished(timeout=timeout)
        except WaitTimeout:
            raise CommandError(
                f"ping {job.id}: no worker completed it within {timeout:g} s"
            ) from None
        round_trip_ms = (time.time() - sent) * 1000
        self.stdout.write(
            f"ping {job.id}: pong from {pong['worker']}, round trip {round_trip_ms:.1f} ms "
            f"(queued {pong['queueMs']:.1f} ms)"
        )
