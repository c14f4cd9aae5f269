"""Jobyard's performance benchmark: plain Celery, Jobyard and BullMQ side by side.

Run it with `.venv/bin/python -m bench.run` (see bench/README.md).
"""
