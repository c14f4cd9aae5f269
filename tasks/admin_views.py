"""The admin's own pages: the dashboard (with pause/resume) and the trigger form.

Both go through the tasks API only: all_queue_metrics, get_workers, Queue.pause/resume,
job_types and enqueue, which validates exactly as the HTTP API does.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_POST

from tasks import InvalidJobData, InvalidJobOptions, Queue, UnknownJobType, enqueue, get_job
from tasks.dashboard import (
    BACKLOG_WAITING,
    FAILING_MIN_FINISHED,
    FAILING_RATE,
    archive_context,
    dashboard_context,
)
from tasks.errors import UnknownQueue
from tasks.recorder import recorder_faults, recorder_lag
from tasks.registry import job_types
from tasks.states import FINISHED


def dashboard(request: HttpRequest) -> HttpResponse:
    lag = recorder_lag()
    context = {
        **admin.site.each_context(request),
        **dashboard_context(),
        "title": "Dashboard",
        "archive_lag": sum(v or 0 for v in lag.values()),
        "archive_faults": recorder_faults(),
        "archive": archive_context(),
        "rules": {"rate": FAILING_RATE, "min": FAILING_MIN_FINISHED, "backlog": BACKLOG_WAITING},
    }
    return TemplateResponse(request, "tasks/dashboard.html", context)


@require_POST
def queue_action(request: HttpRequest, queue: str, action: str) -> HttpResponse:
    """Pause, resume or recover the stalled jobs of a queue (POST, CSRF-checked, staff only
    through admin_view)."""
    if action not in ("pause", "resume", "recover-stalled"):
        raise Http404("unknown queue action")
    try:
        target = Queue(queue)
    except UnknownQueue:
        raise Http404("unknown queue") from None
    if action == "recover-stalled":
        ids = target.recover_stalled()
        messages.success(
            request,
            f"Queue {queue}: {len(ids)} stalled job(s) (their worker's "
            "lock expired) sent again; jobs of live workers left alone.",
        )
    elif action == "pause":
        target.pause()
        messages.success(request, f"Queue {queue} paused: workers start none of its jobs.")
    else:
        sent = target.resume()
        messages.success(request, f"Queue {queue} resumed; {sent} parked jobs sent to workers.")
    return redirect("admin:jobyard_dashboard")


# --- trigger form -------------------------------------------------------------------------


def _template(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameters object to start from: defaults filled in, required ones as null."""
    props = schema.get("properties", {})
    return {name: prop.get("default") for name, prop in props.items()}


def _describe(schema: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(schema.get("required", []))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        kinds = [p.get("type", "any") for p in prop.get("anyOf", [prop])]
        rows.append(
            {
                "name": name,
                "type": " or ".join(k for k in kinds) or "any",
                "required": name in required,
                "default": json.dumps(prop["default"]) if "default" in prop else "",
            }
        )
    return rows


class TriggerForm(forms.Form):
    job_type = forms.ChoiceField(label="Job type")
    data = forms.CharField(
        label="Parameters (JSON object)",
        widget=forms.Textarea(attrs={"rows": 6, "cols": 60, "class": "vLargeTextField"}),
        initial="{}",
        required=False,
    )
    delay = forms.IntegerField(label="Delay (ms)", required=False)
    priority = forms.IntegerField(label="Priority (1 highest, 10 lowest)", required=False)
    job_id = forms.CharField(label="Job id (idempotency key)", required=False, max_length=200)

    #: The options' names in the tasks API's error messages (snake_case or camelCase).
    OPTION_FIELDS = {
        "delay": "delay",
        "priority": "priority",
        "job_id": "job_id",
        "jobId": "job_id",
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["job_type"].choices = [
            (name, f"{name}  (queue {declared.queue})") for name, declared in job_types().items()
        ]

    def clean_data(self) -> dict[str, Any]:
        raw = (self.cleaned_data.get("data") or "").strip() or "{}"
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"not valid JSON: {exc}") from None

    def send(self):
        """Enqueue through the tasks API; its validation errors become field errors."""
        options = {
            name: self.cleaned_data[name]
            for name in ("delay", "priority", "job_id")
            if self.cleaned_data.get(name) not in (None, "")
        }
        try:
            return enqueue(self.cleaned_data["job_type"], self.cleaned_data["data"], **options)
        except UnknownJobType as exc:
            self.add_error("job_type", str(exc))
        except InvalidJobData as exc:
            for error in exc.errors:
                self.add_error("data", f"{error['field']}: {error['message']}")
        except InvalidJobOptions as exc:
            for error in exc.errors:
                head = error["field"].split(".")[0]
                target = self.OPTION_FIELDS.get(head)
                self.add_error(
                    target, error["message"] if target else f"{error['field']}: {error['message']}"
                )
        return None


def trigger(request: HttpRequest) -> HttpResponse:
    declared = job_types()
    if request.method == "POST":
        form = TriggerForm(request.POST)
        if form.is_valid():
            job = form.send()
            if job is not None:
                messages.success(request, f"Job {job.id} ({job.name}) sent to queue {job.queue}.")
                url = reverse("admin:jobyard_trigger")
                return redirect(f"{url}?queue={job.queue}&job={job.id}&type={job.name}")
    else:
        chosen = request.GET.get("type")
        initial = {"job_type": chosen if chosen in declared else "ping"}
        if initial["job_type"] in declared:
            schema = declared[initial["job_type"]].json_schema()
            initial["data"] = json.dumps(_template(schema))
        form = TriggerForm(initial=initial)
    sent = None
    queue, job_id = request.GET.get("queue"), request.GET.get("job")
    if queue and job_id:
        try:
            live = get_job(queue, job_id)
        except UnknownQueue:
            live = None
        sent = {
            "queue": queue,
            "id": job_id,
            "job": live,
            "finished": live is None or live.state in FINISHED,
            "returnvalue": json.dumps(live.returnvalue, indent=2) if live else "",
            "url": reverse("admin:tasks_jobrecord_change", args=[quote(f"{queue}:{job_id}")]),
        }
    types = {
        name: {
            "queue": d.queue,
            "description": d.description,
            "template": json.dumps(_template(d.json_schema())),
            "params": _describe(d.json_schema()),
        }
        for name, d in declared.items()
    }
    context = {
        **admin.site.each_context(request),
        "title": "Trigger a job",
        "form": form,
        "sent": sent,
        "types": types,
        "types_json": {k: {"template": v["template"]} for k, v in types.items()},
    }
    return TemplateResponse(request, "tasks/trigger.html", context)
