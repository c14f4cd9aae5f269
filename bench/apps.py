from django.apps import AppConfig


class BenchConfig(AppConfig):
    """The benchmark's job types (bench/jobs.py, found by the tasks app like any jobs.py)."""

    name = "bench"
    verbose_name = "Benchmark"
