"""`manage.py webhook_events`: turn job events and the catalog's outbox into webhook
deliveries, until SIGTERM/SIGINT (`--once`: one turn, for tests and cron)."""

from __future__ import annotations

import signal

from django.core.management.base import BaseCommand

from notifications.webhooks.sources import run


class Command(BaseCommand):
    help = "Turn job events and outbox rows into webhook deliveries (a long-running loop)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="one turn, then exit")
        parser.add_argument("--block-ms", type=int, default=1000,
                            help="how long one turn waits for job events (ms)")  # fmt: skip

    def handle(self, *args, once: bool = False, block_ms: int = 1000, **options):
        stopping = []
        if not once:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stopping.append(True))
        totals = run(once=once, block_ms=block_ms, stop=lambda: bool(stopping))
        self.stdout.write(
            f"job events: {totals['jobEvents']}, outbox events: {totals['outboxEvents']}, "
            f"dead-job digests: {totals['deadJobDigests']}"
        )
