"""Schedules in the admin: Jobyard's own page (Schedules › schedules) and django-celery-beat's
periodic tasks page, both with what Jobyard adds to a schedule.

The form checks a schedule as the beat will read it (service.target_of and plan_for), each
error on the field at fault: the task is a job type (its parameters fit its schema) or a
registered Celery task; what a job type's run cannot carry (args, another queue, exchange,
routing key, headers, expire_seconds) is refused; a priority is 0..9 (Redis's range); the
queue is one of JOBYARD_QUEUES; the crontab or one-off time is one that fires (not
`0 0 30 2 *`, February 30th); an interval is in range. Jobyard's inline cannot contradict
the visible schedule: a seconds field needs a crontab, every_ms must agree with the
interval (the interval row is what fires), job options apply to job types only and their
priority must agree with the task's. The list shows each schedule's pattern as it fires
(a 6-field cron with its seconds), next run and error.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from django import forms
from django.contrib import admin
from django.forms.models import BaseInlineFormSet
from django.utils import timezone
from django_celery_beat.admin import PeriodicTaskAdmin as BeatPeriodicTaskAdmin
from django_celery_beat.admin import PeriodicTaskForm as BeatPeriodicTaskForm
from django_celery_beat.models import PeriodicTask

from tasks.errors import InvalidJobData, InvalidJobOptions, JobyardError
from tasks.options import parse_options
from tasks.scheduling.models import JobSchedule, Schedule
from tasks.scheduling.patterns import InvalidSchedule, parse_cron, parse_every, parse_kind
from tasks.scheduling.service import (
    check_priority,
    crontab_fields,
    interval_ms,
    schedule_status,
    target_of,
)

#: The PeriodicTask fields target_of reads.
_ROW_FIELDS = ("task", "args", "kwargs", "queue", "exchange", "routing_key", "headers",
               "priority", "expires", "expire_seconds")  # fmt: skip


class PeriodicTaskForm(BeatPeriodicTaskForm):
    def clean(self):
        data = super().clean()
        row = SimpleNamespace(name=data.get("name") or "",
                              **{name: data.get(name) for name in _ROW_FIELDS})  # fmt: skip
        task_field = "regtask" if "regtask" in self.fields else "task"
        try:
            check_priority(data.get("priority"))
        except InvalidSchedule as exc:
            self.add_error("priority", exc.reason)
        self._check_plan(data)
        try:
            target = target_of(row)
        except InvalidSchedule as exc:
            field = exc.field if exc.field in self.fields and exc.field != "task" else task_field
            if exc.field not in self.errors:  # the stock JSON check may have said it already
                self.add_error(field, exc.reason)
            return data
        if target.declared is not None:
            try:
                target.declared.validate(target.kwargs)
            except InvalidJobData as exc:
                self.add_error("kwargs", str(exc))
        return data

    def _check_plan(self, data: dict) -> None:
        """The crontab, interval or one-off time, refused as install_schedule refuses them."""
        now = timezone.now()
        checks = (
            ("crontab", lambda c: parse_kind("cron", crontab_fields(c), str(c.timezone), now, now)),
            ("interval", lambda i: parse_every(interval_ms(i), now)),
            ("clocked", lambda c: parse_kind("at", c.clocked_time, "UTC", now, now)),
        )
        for name, check in checks:
            value = data.get(name)
            if value is None:
                continue
            try:
                check(value)
            except InvalidSchedule as exc:
                self.add_error(name, str(exc))
            return


class JobScheduleForm(forms.ModelForm):
    class Meta:
        model = JobSchedule
        fields = ("seconds", "every_ms", "options", "misfire")

    def __init__(self, *args: Any, parent_task: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: The periodic task as the form above is about to save it (not as stored).
        self.parent_task = parent_task

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

    def clean(self):
        """Nothing here may contradict the schedule above it (the periodic task as the
        form above is about to save it): one of two fields wins, the other is refused."""
        data = super().clean()
        task = self.parent_task
        if task is None:
            return data
        if data.get("seconds") and task.crontab is None:
            self.add_error(
                "seconds",
                "a seconds field extends a crontab (6 fields, seconds first): choose a crontab "
                "schedule above, or leave seconds empty",
            )
        every_ms = data.get("every_ms")
        # every_ms as installed and left alone follows the interval (save_related); one
        # typed here must agree with it.
        if every_ms is not None and "every_ms" in self.changed_data:
            if task.interval is None:
                self.add_error(
                    "every_ms",
                    "every_ms describes an interval schedule: choose the interval above, or "
                    "leave every_ms empty",
                )
            elif interval_ms(task.interval) != every_ms:
                self.add_error(
                    "every_ms",
                    f"every_ms ({every_ms} ms) contradicts the interval ({task.interval}, "
                    f"{interval_ms(task.interval)} ms), which is what fires: leave every_ms "
                    "empty, or make them agree",
                )
        if "options" in data and not self.has_error("options"):
            try:
                target_of(task, SimpleNamespace(options=data["options"]))
            except InvalidSchedule as exc:
                if exc.field in ("options", "priority"):
                    self.add_error("options", exc.reason)
            except (JobyardError, ValueError):
                pass  # the form above shows what is wrong with the task itself
        return data


class JobScheduleFormSet(BaseInlineFormSet):
    def get_form_kwargs(self, index: int | None) -> dict[str, Any]:
        return {**super().get_form_kwargs(index), "parent_task": self.instance}


class JobScheduleInline(admin.StackedInline):
    model = JobSchedule
    form = JobScheduleForm
    formset = JobScheduleFormSet
    can_delete = False
    extra = 1
    max_num = 1
    fields = ("seconds", "every_ms", "options", "misfire", "last_tick", "last_job_id", "last_error")
    readonly_fields = ("last_tick", "last_job_id", "last_error")
    verbose_name = "Jobyard"


class PeriodicTaskAdmin(BeatPeriodicTaskAdmin):
    form = PeriodicTaskForm
    inlines = [JobScheduleInline]
    list_display = ("name", "enabled", "task", "pattern", "next_run", "last_run", "last_error")

    @admin.display(description="pattern")
    def pattern(self, obj: PeriodicTask) -> str:
        """As it fires: a crontab with Jobyard's seconds field in front, an interval in ms."""
        text = self._status(obj)[0]
        return f"{text} ({obj.crontab.timezone})" if obj.crontab_id else text

    @admin.display(description="next run")
    def next_run(self, obj: PeriodicTask) -> str:
        upcoming = self._status(obj)[1]
        return upcoming.strftime("%Y-%m-%d %H:%M:%S %Z") if upcoming else "—"

    @admin.display(description="last run", ordering="last_run_at")
    def last_run(self, obj: PeriodicTask) -> str:
        return obj.last_run_at.strftime("%Y-%m-%d %H:%M:%S %Z") if obj.last_run_at else "—"

    @admin.display(description="last error")
    def last_error(self, obj: PeriodicTask) -> str:
        # What the beat recorded, or why the pattern cannot be computed (a broken row).
        return self._status(obj)[2]

    @staticmethod
    def _status(obj: PeriodicTask) -> tuple:
        """schedule_status, once per row of the list (three columns show it)."""
        if not hasattr(obj, "_jobyard_status"):
            obj._jobyard_status = schedule_status(obj, timezone.now())
        return obj._jobyard_status

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("crontab", "interval", "clocked", "jobyard")
        )

    def save_related(self, request, form, formsets, change) -> None:
        """Jobyard's every_ms mirrors the interval row saved above it (or is cleared
        without one): the interval is what fires, and the page never says otherwise."""
        super().save_related(request, form, formsets, change)
        task = form.instance
        every_ms = interval_ms(task.interval) if task.interval_id else None
        JobSchedule.objects.filter(pk=task.pk).exclude(every_ms=every_ms).update(every_ms=every_ms)


class ScheduleAdmin(PeriodicTaskAdmin):
    """Jobyard's page of schedules: the same rows, form and checks, key first."""

    list_display = ("name", "task", "pattern", "next_run", "enabled", "last_run", "last_error")
    list_filter = ("enabled", "one_off", "task")


admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, PeriodicTaskAdmin)
admin.site.register(Schedule, ScheduleAdmin)
