"""Comets, as the COBS comet list describes them (catalog/cobs.py keeps them up to date)."""

from django.db import models
from django.utils import timezone

__all__ = ["Comet"]


class Comet(models.Model):
    """One comet. `name` is its designation (`C/2020 F3`, `12P`), unique; `cobs_id` is
    COBS's own id, the key the import matches on."""

    cobs_id = models.PositiveIntegerField("COBS id", unique=True, null=True, blank=True)
    name = models.CharField("designation", max_length=100, unique=True)
    fullname = models.CharField(max_length=200, blank=True)
    mpc_name = models.CharField("MPC name", max_length=50, blank=True)
    icq_name = models.CharField("ICQ name", max_length=50, blank=True)
    #: COBS's type letter: P periodic, C non-periodic, I interstellar, A, M, N, D.
    type = models.CharField(max_length=2, blank=True, db_index=True)
    component = models.CharField(max_length=20, blank=True)
    current_magnitude = models.FloatField(null=True, blank=True, db_index=True)
    perihelion_date = models.DateTimeField(null=True, blank=True)
    perihelion_magnitude = models.FloatField(null=True, blank=True)
    peak_magnitude = models.FloatField(null=True, blank=True)
    peak_date = models.DateTimeField(null=True, blank=True)
    is_observed = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True, db_index=True)
    #: When an import first and last found the comet in its source's list.
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now, db_index=True)
    source = models.CharField(max_length=20, default="cobs")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.fullname or self.name
