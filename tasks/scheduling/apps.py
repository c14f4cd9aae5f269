from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "tasks.scheduling"
    label = "scheduling"
    verbose_name = "Schedules"
