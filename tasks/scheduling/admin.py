"""django-celery-beat's periodic task admin, with what Jobyard adds to a schedule.

The form checks a schedule the way install_schedule does: the job type exists, the
parameters fit its schema, the options are valid, the crontab or one-off time is one that
fires (not `0 0 30 2 *`, February 30th), a 6-field pattern's seconds field parses, and an
interval in ms is in range; each error is shown on the field at fault. The list shows each
schedule's next run and its error (a broken schedule: no next run, and why); the page has
Jobyard's row inline (seconds, options, misfire policy).
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin
from django.utils import timezone
from django_celery_beat.admin import PeriodicTaskAdmin as BeatPeriodicTaskAdmin
from django_celery_beat.admin import PeriodicTaskForm as BeatPeriodicTaskForm
from django_celery_beat.models import PeriodicTask

from tasks.errors import InvalidJobData, InvalidJobOptions, UnknownJobType
from tasks.options import parse_options
from tasks.registry import get_job_type
from tasks.scheduling.models import JobSchedule
from tasks.scheduling.patterns import InvalidSchedule, parse_cron, parse_every, parse_kind
from tasks.scheduling.service import crontab_fields, schedule_status


class PeriodicTaskForm(BeatPeriodicTaskForm):
    def clean(self):
        data = super().clean()
        name = data.get("task")
        try:
            declared = get_job_type(name)
        except UnknownJobType as exc:
            self.add_error("regtask" if "regtask" in self.fields else "task", str(exc))
            return data
        try:
            declared.validate(json.loads(data.get("kwargs") or "{}"))
        except (InvalidJobData, ValueError) as exc:
            self.add_error("kwargs", str(exc))
        self._check_plan(data)
        return data

    def _check_plan(self, data: dict) -> None:
        """The crontab or the one-off time, refused as install_schedule refuses them."""
        now = timezone.now()
        crontab, clocked = data.get("crontab"), data.get("clocked")
        try:
            if crontab is not None:
                parse_kind("cron", crontab_fields(crontab), str(crontab.timezone), now, now)
            elif clocked is not None:
                parse_kind("at", clocked.clocked_time, "UTC", now, now)
        except InvalidSchedule as exc:
            self.add_error("crontab" if crontab is not None else "clocked", str(exc))


class JobScheduleForm(forms.ModelForm):
    class Meta:
        model = JobSchedule
        fields = ("seconds", "every_ms", "options", "misfire")

    def clean_options(self):
        options = self.cleaned_data.get("options") or {}
        try:
            parse_options(options)
        except InvalidJobOptions as exc:
            raise forms.ValidationError(str(exc)) from None
        if "jobId" in options or "job_id" in options:
            raise forms.ValidationError("each run gets its own job id")
        return options

    def clean_every_ms(self):
        every_ms = self.cleaned_data.get("every_ms")
        if every_ms is not None:
            try:
                parse_every(int(every_ms), timezone.now())
            except InvalidSchedule as exc:
                raise forms.ValidationError(str(exc)) from None
        return every_ms

    def clean_seconds(self):
        seconds = self.cleaned_data.get("seconds", "").strip()
        if seconds:
            try:
                parse_cron(f"{seconds} * * * * *", "UTC")
            except InvalidSchedule as exc:
                raise forms.ValidationError(str(exc)) from None
        return seconds


class JobScheduleInline(admin.StackedInline):
    model = JobSchedule
    form = JobScheduleForm
    can_delete = False
    extra = 1
    max_num = 1
    fields = ("seconds", "every_ms", "options", "misfire", "last_tick", "last_job_id", "last_error")
    readonly_fields = ("last_tick", "last_job_id", "last_error")
    verbose_name = "Jobyard"


class PeriodicTaskAdmin(BeatPeriodicTaskAdmin):
    form = PeriodicTaskForm
    inlines = [JobScheduleInline]
    list_display = ("name", "enabled", "task", "scheduler", "next_run", "last_run_at", "last_error")

    @admin.display(description="next run")
    def next_run(self, obj: PeriodicTask) -> str:
        upcoming = self._status(obj)[1]
        return upcoming.strftime("%Y-%m-%d %H:%M %Z") if upcoming else "—"

    @admin.display(description="last error")
    def last_error(self, obj: PeriodicTask) -> str:
        # What the beat recorded, or why the pattern cannot be computed (a broken row).
        return self._status(obj)[2]

    @staticmethod
    def _status(obj: PeriodicTask) -> tuple:
        """schedule_status, once per row of the list (two columns show it)."""
        if not hasattr(obj, "_jobyard_status"):
            obj._jobyard_status = schedule_status(obj, timezone.now())
        return obj._jobyard_status

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("crontab", "interval", "clocked", "jobyard")
        )


admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, PeriodicTaskAdmin)
