"""Imports: the plain functions behind `ingest-dataset` and `calculate-batch`.

rows      the row schema (columns, one row's validation)
readers   streaming CSV / JSON readers: a line at a time, never the whole file
ingest    chunked writes of a batch, resumable, with row errors
calculate per-designation statistics of a batch, and its outbox event
fetch     a `url` source's download, refusing private addresses
service   starting an import (store the upload, enqueue the job) and the errors CSV
"""

from catalog.imports.rows import DatasetError

__all__ = ["DatasetError"]
