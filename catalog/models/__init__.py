"""The catalog's models, one module per part (comets, ...), re-exported here."""

from catalog.models.comets import *  # noqa: F403
