"""Stale catalog data, removed in batches: one function per kind of data.

`cleanup-old-data` (catalog/jobs/comets.py) runs the kinds named, or all of them. A part
of the catalog adds its own kind with `@cleanup_kind("reports")` on a function
`(cutoff) -> deleted count` in its module, imported by catalog/cleanup.py's users (the
jobs package imports every part).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.db.models import QuerySet

from catalog.models import Comet

#: Rows deleted per statement: each DELETE locks only its own rows, briefly, never the table.
BATCH_SIZE = 1000

#: kind -> function(cutoff) returning how many rows it deleted.
CLEANUP_KINDS: dict[str, Callable[[datetime], int]] = {}


def cleanup_kind(name: str) -> Callable[[Callable[[datetime], int]], Callable[[datetime], int]]:
    def register(func: Callable[[datetime], int]) -> Callable[[datetime], int]:
        if name == "all" or (name in CLEANUP_KINDS and CLEANUP_KINDS[name] is not func):
            raise ValueError(f"cleanup kind {name!r} is taken")
        CLEANUP_KINDS[name] = func
        return func

    return register


def delete_in_batches(queryset: QuerySet, batch_size: int = BATCH_SIZE) -> int:
    """Delete what `queryset` selects, `batch_size` primary keys per statement (each its
    own transaction), so a large cleanup never holds a long lock; returns the count."""
    model = queryset.model
    total = 0
    while True:
        pks = list(queryset.order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not pks:
            return total
        deleted, _ = model.objects.filter(pk__in=pks).delete()
        total += deleted


@cleanup_kind("comets")
def stale_comets(cutoff: datetime) -> int:
    """Comets no longer active and not seen by an import since `cutoff`."""
    return delete_in_batches(Comet.objects.filter(is_active=False, last_seen__lt=cutoff))


def cleanup(cutoff: datetime, kinds: list[str]) -> dict[str, int]:
    """Run each kind named; deleted rows per kind."""
    return {kind: CLEANUP_KINDS[kind](cutoff) for kind in kinds}
