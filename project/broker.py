"""The broker URL's own scheme names Jobyard's transport: redis://, rediss://, sentinel://.

Jobyard's consumer (take.lua: pop and claim in one step) lives in a kombu transport of its
own, tasks/worker/transport.py. Naming it by import path (Celery's `broker_transport`)
leaves every tool that builds a connection from the URL alone with a broken one:
`app.connection().as_uri()` reads `tasks.worker.transport:Transport://...`, which kombu 5.7
refuses ("Invalid transport scheme") and Flower's Broker page does not know. Instead kombu's
alias table maps the plain schemes to Jobyard's classes, so the URL stays a Redis URL to
Flower, `celery inspect` and kombu, and any connection this process builds to it, from the
URL or from the app, consumes with take.lua.

Registered when the `project` package is imported (project/__init__.py), which every process
does before it connects: Django loads project.settings, `celery -A project` loads the app.
Only strings are registered: the transport module is imported when the first connection is
made, with Django set up. Every kombu Redis connection in a Jobyard process is then
Jobyard's (a message it sends to one of the queues becomes a job); code that must speak to
Redis as stock kombu does names `kombu.transport.redis:Transport` by path.
"""

from __future__ import annotations

from kombu import transport

#: scheme -> transport class, for kombu.transport.TRANSPORT_ALIASES.
ALIASES = {
    "redis": "tasks.worker.transport:Transport",
    "rediss": "tasks.worker.transport:Transport",
    "sentinel": "tasks.worker.transport:SentinelTransport",
}


def register() -> None:
    transport.TRANSPORT_ALIASES.update(ALIASES)
    # A scheme resolved before this ran (another import) would keep kombu's class.
    cache = getattr(transport, "_transport_cache", {})
    for scheme in ALIASES:
        cache.pop(scheme, None)


register()
