"""The daily aggregation of job statistics (docs/aggregation.md): plain functions that
`aggregate-daily` (catalog/jobs/aggregation.py) and the dashboard's "30 days" section call."""
