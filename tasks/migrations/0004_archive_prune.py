"""Indexes that make pruning the archive by age a range scan per batch (tasks/archive_retention.py).

Built CONCURRENTLY, outside a transaction: on a deployment whose archive already holds
millions of rows, a plain CREATE INDEX would block the recorder's writes until it is built.
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("tasks", "0003_archivegap"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="jobrecord",
            index=models.Index(fields=["queue", "state", "finished_on"], name="jobrecord_prune"),
        ),
        AddIndexConcurrently(
            model_name="jobrecord",
            index=models.Index(
                condition=models.Q(("state", "cancelled")),
                fields=["queue", "removed_at"],
                name="jobrecord_prune_cancelled",
            ),
        ),
    ]
