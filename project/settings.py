"""Jobyard settings: the one module, read from the environment and parsed strictly.

Every variable is validated when the process starts; a malformed value (a boolean that is
not true/false, a number that is not a number, a URL that does not parse) stops start-up with
a message naming the variable. Defaults serve local development: the services the run
command starts (bin/run). With DEBUG off, SECRET_KEY and ALLOWED_HOSTS have no defaults.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured
from environs import Env, EnvValidationError
from kombu import Queue
from marshmallow.validate import OneOf, Range

BASE_DIR = Path(__file__).resolve().parent.parent


def _as_str(url: object) -> str:
    """env.url gives a ParseResult for a set variable and the default as it was written."""
    return url.geturl() if hasattr(url, "geturl") else str(url or "")


#: Collect every bad variable, then report them together (env.seal() below).
env = Env(eager=False, expand_vars=False)
#: Problems environs cannot see (a rate limit's syntax, a missing file), reported with its.
_invalid: list[str] = []

#: Local development services started by bin/run (see project/localdev.py).
DEV_POSTGRES_PORT = 54329
DEV_REDIS_PORT = 63790

DEBUG = env.bool("DEBUG", default=True)

if DEBUG:
    SECRET_KEY = env.str("SECRET_KEY", default="dev-only-insecure-key-never-use-in-production")
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
else:
    SECRET_KEY = env.str("SECRET_KEY")
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")

CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

DATABASES = {
    "default": env.dj_db_url(
        "DATABASE_URL",
        default=f"postgres://jobyard@127.0.0.1:{DEV_POSTGRES_PORT}/jobyard",
        conn_max_age=env.int("DB_CONN_MAX_AGE", default=60, validate=Range(min=0)),
        conn_health_checks=True,
    )
}
# A PostgreSQL that drops packets (rather than refusing) must not hang a request or the
# beat for the system's connect timeout (minutes): fail in 5 s, as a refusal would.
DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: broker and hot job state ----------------------------------------------------

_redis_password = env.str("REDIS_PASSWORD", default="")
_redis_db = env.int("REDIS_DB", default=0, validate=Range(min=0, max=15))
_redis_tls = env.bool("REDIS_TLS", default=False)
if "REDIS_URL" in os.environ:
    # The parts are not read: Kubernetes injects REDIS_PORT=tcp://... for a Service "redis".
    if os.environ["REDIS_URL"].startswith("unix:///"):  # a socket's path; no host to check
        REDIS_URL = env.str("REDIS_URL")
    else:
        REDIS_URL = _as_str(env.url("REDIS_URL", schemes={"redis", "rediss"}, require_tld=False))
    if _redis_tls and REDIS_URL.startswith("redis://"):  # REDIS_TLS=true turns TLS on
        REDIS_URL = "rediss://" + REDIS_URL.removeprefix("redis://")
else:
    _redis_host = env.str("REDIS_HOST", default="127.0.0.1")
    _redis_port = env.int("REDIS_PORT", default=DEV_REDIS_PORT, validate=Range(min=1, max=65535))
    _auth = f":{quote(_redis_password, safe='')}@" if _redis_password else ""
    _scheme = "rediss" if _redis_tls else "redis"
    REDIS_URL = f"{_scheme}://{_auth}{_redis_host}:{_redis_port}/{_redis_db}"

#: REDIS_URL's parts, as every client reads them: the registry (tasks/connection.py), the
#: broker (CELERY_BROKER_URL) and the result backend use the same server, database,
#: credentials and TLS. The database is the path (/3); for unix:// the query's db (?db=3).
_redis = urlsplit(REDIS_URL)
_redis_query = parse_qs(_redis.query)
_redis_userinfo = _redis.netloc.rpartition("@")[0]  # "user:password", still URL-quoted
_redis_db_text = (
    _redis_query.get("db", ["0"])[0] if _redis.scheme == "unix" else _redis.path.strip("/")
) or "0"
REDIS_DB = int(_redis_db_text) if _redis_db_text.isdigit() else 0
if _redis.scheme and not _redis_db_text.isdigit():
    _invalid.append(f"REDIS_URL: the database must be a number, not {_redis_db_text!r}")
if _redis.scheme in ("redis", "rediss") and _redis.query:
    _invalid.append(
        "REDIS_URL: no query string; the database goes in the path (/3), TLS options in"
        " REDIS_TLS_CA_FILE, REDIS_TLS_CERT_FILE, REDIS_TLS_KEY_FILE, REDIS_TLS_CERT_REQS"
    )
#: TLS for every Redis connection: a rediss:// REDIS_URL, or REDIS_TLS=true.
REDIS_TLS = _redis.scheme == "rediss"


def _tls_file(variable: str) -> str | None:
    path = env.str(variable, default="")
    if path and not Path(path).is_file():
        _invalid.append(f"{variable}: no such file: {path}")
    return path or None


#: PEM files: the CA that signed the server's certificate (the system's CAs when unset), and
#: this client's certificate and key for servers that check clients (tls-auth-clients yes).
REDIS_TLS_CA_FILE = _tls_file("REDIS_TLS_CA_FILE")
REDIS_TLS_CERT_FILE = _tls_file("REDIS_TLS_CERT_FILE")
REDIS_TLS_KEY_FILE = _tls_file("REDIS_TLS_KEY_FILE")
#: `none` accepts any server certificate (a PaaS Redis with a self-signed one): encrypted,
#: but not authenticated. `required` (the default) checks it and the host name.
_tls_cert_reqs = env.str(
    "REDIS_TLS_CERT_REQS", default="required", validate=OneOf(["required", "optional", "none"])
)
_CERT_REQS = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}
_tls_options: dict = {"ssl_cert_reqs": _CERT_REQS.get(_tls_cert_reqs, ssl.CERT_REQUIRED)}
if _tls_options["ssl_cert_reqs"] != ssl.CERT_REQUIRED:
    _tls_options["ssl_check_hostname"] = False
for _key, _path in (
    ("ssl_ca_certs", REDIS_TLS_CA_FILE),
    ("ssl_certfile", REDIS_TLS_CERT_FILE),
    ("ssl_keyfile", REDIS_TLS_KEY_FILE),
):
    if _path:
        _tls_options[_key] = _path
if REDIS_TLS_KEY_FILE and not REDIS_TLS_CERT_FILE:
    _invalid.append("REDIS_TLS_KEY_FILE: set without REDIS_TLS_CERT_FILE")
#: redis-py's TLS options (ssl_cert_reqs, ssl_ca_certs, ssl_certfile, ssl_keyfile), one dict
#: for the registry, the broker (broker_use_ssl) and the result backend
#: (redis_backend_use_ssl); None without TLS.
REDIS_SSL: dict | None = dict(_tls_options) if REDIS_TLS else None

#: "host:port,host:port"; when set, clients ask these sentinels for REDIS_SENTINEL_MASTER,
#: and connect to it with REDIS_URL's credentials, database and TLS (its host is not used).
REDIS_SENTINELS = [
    (host, int(port))
    for host, _, port in (item.rpartition(":") for item in env.list("REDIS_SENTINELS", default=[]))
]
REDIS_SENTINEL_MASTER = env.str("REDIS_SENTINEL_MASTER", default="mymaster")
#: The sentinels' own password (their requirepass): by default the master's; set it empty
#: for sentinels that have none. Their TLS: by default the master's.
_sentinel_password = env.str(
    "REDIS_SENTINEL_PASSWORD", default=unquote(_redis.password or "") if _redis.scheme else ""
)
_sentinel_tls = env.bool("REDIS_SENTINEL_TLS", default=REDIS_TLS)
#: How every client reaches the sentinels themselves (redis-py's `sentinel_kwargs`).
REDIS_SENTINEL_KWARGS: dict = {"socket_timeout": 2, "socket_connect_timeout": 2}
if _sentinel_password:
    REDIS_SENTINEL_KWARGS["password"] = _sentinel_password
if _sentinel_tls:
    REDIS_SENTINEL_KWARGS.update(ssl=True, **_tls_options)
if REDIS_SENTINELS and _redis.scheme == "unix":
    _invalid.append("REDIS_SENTINELS: the master is reached over TCP; REDIS_URL is unix://")
if any((REDIS_TLS_CA_FILE, REDIS_TLS_CERT_FILE, REDIS_TLS_KEY_FILE)) and not (
    REDIS_TLS or (REDIS_SENTINELS and _sentinel_tls)
):
    _invalid.append(
        "REDIS_TLS_CA_FILE, REDIS_TLS_CERT_FILE, REDIS_TLS_KEY_FILE: set, but TLS is off"
        " (use a rediss:// REDIS_URL or REDIS_TLS=true)"
    )

# --- Queues: the one place queue names and their defaults live -----------------------

QUEUE_CONCURRENCY = env.int("QUEUE_CONCURRENCY", default=5, validate=Range(min=1, max=512))
_QUEUE_DEFAULT_CONCURRENCY = {
    "default": QUEUE_CONCURRENCY,
    "email": 5,
    "notifications": 5,
    "webhooks": 5,
    "reports": 2,
    "cleanup": 1,
    "catalog": 1,
}
_RATE_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}


def _rate_limit(variable: str) -> tuple[int, int] | None:
    """`QUEUE_EMAIL_RATE_LIMIT=100/60s`: at most 100 job starts in any 60 s, all workers."""
    raw = env.str(variable, default="").strip()
    if not raw:
        return None
    try:
        count, per = raw.split("/")
        unit = next(u for u in ("ms", "s", "m", "h") if per.endswith(u))
        duration = int(per[: -len(unit)] or 1) * _RATE_UNITS_MS[unit]
        if int(count) < 1 or duration < 1:
            raise ValueError
        return int(count), duration
    except (ValueError, StopIteration):
        _invalid.append(f"{variable}: expected <max>/<duration> such as 10/1s or 100/5m")
        return None


def _queue_int(name: str, option: str, default: int, low: int) -> int:
    return env.int(f"QUEUE_{name.upper()}_{option}", default=default, validate=Range(min=low))


#: Days the job archive (PostgreSQL) keeps a finished job, per final state, for every queue:
#: JOBYARD_ARCHIVE_<STATE>_DAYS; one queue: QUEUE_<NAME>_ARCHIVE_<STATE>_DAYS. 0 keeps the
#: rows for ever. The daily `prune-archive` job deletes older rows (tasks/archive_retention.py).
ARCHIVE_DAYS_DEFAULT = {"completed": 7, "failed": 30, "cancelled": 7}
_ARCHIVE_DAYS = {
    state: env.int(f"JOBYARD_ARCHIVE_{state.upper()}_DAYS", default=days, validate=Range(min=0))
    for state, days in ARCHIVE_DAYS_DEFAULT.items()
}

#: name -> options. Each is overridable per queue: QUEUE_<NAME>_CONCURRENCY,
#: QUEUE_<NAME>_RATE_LIMIT, QUEUE_<NAME>_KEEP_COMPLETED, QUEUE_<NAME>_KEEP_FAILED,
#: QUEUE_<NAME>_ARCHIVE_<STATE>_DAYS.
JOBYARD_QUEUES: dict[str, dict] = {
    name: {
        "concurrency": _queue_int(name, "CONCURRENCY", default, 1),
        "rate_limit": _rate_limit(f"QUEUE_{name.upper()}_RATE_LIMIT"),
        "keep_completed": _queue_int(name, "KEEP_COMPLETED", 100, 0),
        "keep_failed": _queue_int(name, "KEEP_FAILED", 50, 0),
        "archive_days": {
            state: _queue_int(name, f"ARCHIVE_{state.upper()}_DAYS", days, 0)
            for state, days in _ARCHIVE_DAYS.items()
        },
    }
    for name, default in _QUEUE_DEFAULT_CONCURRENCY.items()
}
JOBYARD_DEFAULT_QUEUE = "default"

#: The job platform's knobs. Tests shrink the times; production keeps the defaults.
JOBYARD = {
    "KEY_PREFIX": env.str("JOBYARD_KEY_PREFIX", default="jy:"),
    # A running job's lock lives this long unless its worker renews it (every third of it);
    # a job whose lock expired is found stalled and run again.
    "LOCK_DURATION_MS": env.int(
        "JOBYARD_LOCK_DURATION_MS", default=30_000, validate=Range(min=500)
    ),
    "STALLED_INTERVAL_MS": env.int(
        "JOBYARD_STALLED_INTERVAL_MS", default=15_000, validate=Range(min=100)
    ),
    "MAX_STALLED": env.int("JOBYARD_MAX_STALLED", default=1, validate=Range(min=0)),
    # A waiting job with no message left in its queue's lists for this long is sent again
    # (a backstop: see tasks/lua/reconcile.lua); checked with the stalled jobs.
    "RECONCILE_GRACE_MS": env.int(
        "JOBYARD_RECONCILE_GRACE_MS", default=60_000, validate=Range(min=1000)
    ),
    # A job of a type its worker does not know (a rolling deploy) is handed back, due again
    # after DELAY (another worker may know it); handed back for over GRACE, it fails.
    "UNKNOWN_TYPE_DELAY_MS": env.int(
        "JOBYARD_UNKNOWN_TYPE_DELAY_MS", default=1_000, validate=Range(min=0)
    ),
    "UNKNOWN_TYPE_GRACE_MS": env.int(
        "JOBYARD_UNKNOWN_TYPE_GRACE_MS", default=600_000, validate=Range(min=0)
    ),
    # How often a worker looks for due delayed jobs at most; it sleeps less when one is due.
    "PROMOTE_INTERVAL_MS": env.int(
        "JOBYARD_PROMOTE_INTERVAL_MS", default=200, validate=Range(min=10, max=5000)
    ),
    "HEARTBEAT_INTERVAL_MS": env.int(
        "JOBYARD_HEARTBEAT_INTERVAL_MS", default=5_000, validate=Range(min=100)
    ),
    "EVENTS_MAXLEN": env.int("JOBYARD_EVENTS_MAXLEN", default=10_000, validate=Range(min=100)),
    # A waiting job's broker message is a token `queue/id`, the Celery message built from the
    # job as a worker takes it (tasks/messages.py). Off: full messages, which a release before
    # lean messages can read; for a rolling deploy from such a release (docs/operations.md).
    "LEAN_MESSAGES": env.bool("JOBYARD_LEAN_MESSAGES", default=True),
    "STACKTRACES_KEPT": 10,
    # job.log(): the newest lines kept per job (older ones are dropped as new ones come).
    "LOG_LINES_KEPT": env.int("JOBYARD_LOG_LINES_KEPT", default=1000, validate=Range(min=1)),
    # A running job that was cancelled gets this long to stop by itself (it sees
    # job.cancelled, JobCancelled at its next progress or log call); then its worker kills
    # the pool process running it (prefork).
    "CANCEL_GRACE_MS": env.int("JOBYARD_CANCEL_GRACE_MS", default=5000, validate=Range(min=0)),
    # Multiplies every retry back-off: tests run the documented policy 100x faster.
    "BACKOFF_SCALE": env.float("JOBYARD_BACKOFF_SCALE", default=1.0, validate=Range(min=0)),
    # SIGTERM: running jobs get this long to finish, then the worker cuts them off (a cold
    # shutdown); they are still active in the registry, so they are found stalled and run
    # again elsewhere. Celery's own soft shutdown always sleeps its whole timeout.
    "SHUTDOWN_GRACE_S": env.float("WORKER_SHUTDOWN_GRACE", default=30.0, validate=Range(min=0)),
    # One beat fires at a time; another takes over within this long of its death.
    "BEAT_LEASE_MS": env.int("JOBYARD_BEAT_LEASE_MS", default=10_000, validate=Range(min=1000)),
    # A run later than this is "missed": its schedule's misfire policy decides.
    "BEAT_MISFIRE_GRACE_MS": env.int(
        "JOBYARD_BEAT_MISFIRE_GRACE_MS", default=30_000, validate=Range(min=0)
    ),
    # A schedule's previous run that has not started within this long (lost, paused, no
    # worker) no longer holds back its next runs (tasks/scheduling/firing.py).
    "SCHEDULE_STUCK_MS": env.int(
        "JOBYARD_SCHEDULE_STUCK_MS", default=600_000, validate=Range(min=1000)
    ),
    # Archive rows deleted per statement (and transaction) when pruning by age: each batch
    # locks only its own rows, for well under a second (docs/benchmarks.md, "Archive prune").
    "ARCHIVE_PRUNE_BATCH": env.int(
        "JOBYARD_ARCHIVE_PRUNE_BATCH", default=2_000, validate=Range(min=1, max=100_000)
    ),
    "DEFAULT_ATTEMPTS": 3,
    "DEFAULT_BACKOFF": {"type": "exponential", "delay": 5000, "factor": 5},
    # Warn (and /readyz says degraded) when Redis's AOF is off: in production (DEBUG off)
    # by default, where a restart must not lose the jobs since the last snapshot.
    "REDIS_REQUIRE_AOF": env.bool("JOBYARD_REDIS_REQUIRE_AOF", default=not DEBUG),
}

#: OpenTelemetry traces (tasks/tracing.py): on when an OTLP endpoint is set; the SDK reads
#: the other OTEL_* variables (OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_HEADERS, ...) itself.
OTEL_ENABLED = bool(env.str("OTEL_EXPORTER_OTLP_ENDPOINT", default="")
                    or env.str("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", default=""))  # fmt: skip

#: Who may read /metrics (Prometheus text, tasks/prometheus.py): "token", an API token of
#: read scope or a staff session, as the API; "none", anyone who reaches the web process:
#: only when /metrics is not reachable from outside (docs/operations.md, "Metrics").
METRICS_AUTH = env.str("METRICS_AUTH", default="token", validate=OneOf(["token", "none"]))

#: gunicorn's threads per process (the Procfile's --threads): read here too, for the cap below.
WEB_THREADS = env.int("WEB_THREADS", default=8, validate=Range(min=1))


def default_max_streams(threads: int) -> int:
    """Event streams one web process opens by default: two threads stay for the rest (one
    with two threads; with one thread, none: a stream would hold the only one)."""
    return max(threads - 2, min(threads - 1, 1))


#: The HTTP API (tasks/api). Each open event stream (/api/v1/events) holds one web thread:
#: it ends after SSE_MAX_SECONDS and the client reconnects with Last-Event-ID, so an idle
#: client cannot hold a thread forever; a keepalive comment every SSE_KEEPALIVE_SECONDS
#: finds a client that left (the write fails) before then. SSE_MAX_STREAMS streams at most
#: per web process (503 past it) leave threads for /healthz, /readyz and the rest of the
#: API: by default WEB_THREADS - 2 (1 with 2 threads; 0, no streams, with 1 thread).
#: SSE_MAX_STREAMS_PER_TOKEN per token or staff user across every process (429 past it).
JOBYARD_API = {
    "MAX_BODY_BYTES": 1024 * 1024,
    "SSE_MAX_SECONDS": env.float("JOBYARD_SSE_MAX_SECONDS", default=300.0, validate=Range(min=1)),
    "SSE_KEEPALIVE_SECONDS": env.float(
        "JOBYARD_SSE_KEEPALIVE_SECONDS", default=15.0, validate=Range(min=1)
    ),
    "SSE_MAX_STREAMS": env.int(
        "JOBYARD_SSE_MAX_STREAMS",
        default=default_max_streams(WEB_THREADS),
        validate=Range(min=0),
    ),
    "SSE_MAX_STREAMS_PER_TOKEN": env.int(
        "JOBYARD_SSE_MAX_STREAMS_PER_TOKEN", default=4, validate=Range(min=1)
    ),
    # A token found live in PostgreSQL is trusted this long without asking again (0: ask
    # every time); while PostgreSQL is unreachable, for up to TOKEN_STALE_SECONDS after its
    # last check (tasks/api/tokens.py). Revoking through the app takes effect at once.
    "TOKEN_CACHE_SECONDS": env.float(
        "JOBYARD_API_TOKEN_CACHE_SECONDS", default=30.0, validate=Range(min=0, max=3600)
    ),
    "TOKEN_STALE_SECONDS": env.float(
        "JOBYARD_API_TOKEN_STALE_SECONDS", default=3600.0, validate=Range(min=0)
    ),
}

# --- Celery (CELERY_ namespace, read by project/celery.py) ----------------------------

#: The broker is Redis to every tool (Flower, `celery inspect`, kombu): redis://, rediss://
#: or sentinel://, which mean Jobyard's transport in every process (project/broker.py).
CELERY_BROKER_URL = REDIS_URL
if _redis.scheme == "unix":  # kombu's spelling of a socket; the database as virtual_host
    CELERY_BROKER_URL = f"redis+socket://{_redis.path}?virtual_host={REDIS_DB}"
#: Why 3600 s: the visibility timeout only matters for a message whose worker died before
#: acking it. Delays never sit unacked in a worker (no ETA/countdown), so the timeout is a
#: backstop, not a scheduler: it must exceed the longest job (else a running job's message
#: is redelivered) and the cost of a long one is only a slow redelivery after a crash.
CELERY_BROKER_VISIBILITY_TIMEOUT = env.int(
    "CELERY_BROKER_VISIBILITY_TIMEOUT", default=3600, validate=Range(min=1)
)
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {
    "visibility_timeout": CELERY_BROKER_VISIBILITY_TIMEOUT,
    # Ten priority lists per queue, polled highest first: priority 1 outruns a backlog.
    "queue_order_strategy": "priority",
    "priority_steps": list(range(10)),
    "sep": ":",
}
#: TLS (CA, client certificate and key) for the broker and the result backend alike.
CELERY_BROKER_USE_SSL = REDIS_SSL
CELERY_REDIS_BACKEND_USE_SSL = REDIS_SSL
#: With Sentinel, the broker and a Redis result backend find the master through the same
#: sentinels, with the same options: a `sentinel://` URL per sentinel carrying the master's
#: credentials and database (as Celery's SentinelBackend reads it too), and master_name.
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS: dict = {}
if REDIS_SENTINELS:
    _master_auth = f"{_redis_userinfo}@" if _redis_userinfo else ""
    CELERY_BROKER_URL = ";".join(
        f"sentinel://{_master_auth}{host}:{port}/{REDIS_DB}" for host, port in REDIS_SENTINELS
    )
    _sentinel_options = {
        "master_name": REDIS_SENTINEL_MASTER,
        "sentinel_kwargs": REDIS_SENTINEL_KWARGS,
    }
    CELERY_BROKER_TRANSPORT_OPTIONS.update(_sentinel_options)
    CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS.update(_sentinel_options)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's result backend: Redis, read through the registry (tasks/results.py), so that
# AsyncResult(id) answers for every job, whichever way it was sent. The broker's server,
# database, credentials and TLS (CELERY_REDIS_BACKEND_USE_SSL); with Sentinel, its sentinels.
if REDIS_SENTINELS:
    CELERY_RESULT_BACKEND = "tasks.results:JobyardSentinelBackend+" + CELERY_BROKER_URL
elif _redis.scheme == "unix":  # Celery's spelling of a socket
    CELERY_RESULT_BACKEND = (
        f"tasks.results:JobyardBackend+socket://{_redis.path}?virtual_host={REDIS_DB}"
    )
else:
    CELERY_RESULT_BACKEND = "tasks.results:JobyardBackend+" + REDIS_URL
CELERY_RESULT_EXPIRES = env.int("CELERY_RESULT_EXPIRES", default=86_400, validate=Range(min=0))
#: Celery's own consumer with the rolling-deploy hand-back (tasks/worker/consumer.py).
CELERY_WORKER_CONSUMER = "tasks.worker.consumer:Consumer"
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = JOBYARD_DEFAULT_QUEUE
#: A task sent the Celery way lands on the list of Jobyard's normal priority (5, step 4),
#: not on the first list, which only priority 1 uses.
CELERY_TASK_DEFAULT_PRIORITY = 4
CELERY_TASK_QUEUES = [Queue(name, routing_key=name) for name in JOBYARD_QUEUES]
#: The one routing table: each job type declares its queue; the router reads the registry.
CELERY_TASK_ROUTES = ("tasks.registry.route_task",)
# Task events stay off by default (Celery's default): they cost a broker publish per state
# change per job. Flower switches them on in the workers it watches (--enable-events).
#: django-celery-beat's database schedules, fired by Jobyard's loop (docs/architecture.md).
CELERY_BEAT_SCHEDULER = "tasks.scheduling.beat:JobyardScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Django ---------------------------------------------------------------------------

INSTALLED_APPS = [
    # First, so that its templates extend the admin's (dashboard and Flower links).
    "tasks",
    # django.contrib.admin with Jobyard's site: the dashboard and trigger pages.
    "tasks.admin_config.JobyardAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "tasks.api",
    "tasks.scheduling",
    "catalog",
    "notifications",
]

MIDDLEWARE = [
    # First: every error under /api/ is JSON, a Host outside ALLOWED_HOSTS included.
    "tasks.api.middleware.ApiJsonErrors",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
CELERY_TIMEZONE = TIME_ZONE
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")

# --- Catalog imports (catalog/imports/, docs/imports.md) --------------------------------

#: The largest dataset an operator may upload or a `url` import may download (bytes).
CATALOG_MAX_UPLOAD_BYTES = env.int("CATALOG_MAX_UPLOAD_BYTES", default=2 * 1024**3,
                                   validate=Range(min=1))  # fmt: skip
#: Rows written per transaction by `ingest-dataset`: a failed chunk rolls back whole.
CATALOG_IMPORT_CHUNK_ROWS = env.int("CATALOG_IMPORT_CHUNK_ROWS", default=5000,
                                    validate=Range(min=1))  # fmt: skip
#: Row errors kept per batch (all are counted): a wholly wrong file stays a bounded table.
CATALOG_IMPORT_MAX_ERRORS = env.int("CATALOG_IMPORT_MAX_ERRORS", default=10_000,
                                    validate=Range(min=0))  # fmt: skip
#: A `url` import to a private, loopback or link-local address is refused unless this is on.
CATALOG_IMPORT_ALLOW_PRIVATE_URLS = env.bool("CATALOG_IMPORT_ALLOW_PRIVATE_URLS", default=False)
#: Designations per `calculate-batch` child of an import's flow (more when a batch would
#: need over 1,000 children): each child is one job, retried on its own.
CATALOG_CALC_PART_DESIGNATIONS = env.int("CATALOG_CALC_PART_DESIGNATIONS", default=10_000,
                                         validate=Range(min=1))  # fmt: skip

# --- Catalog aggregation (catalog/aggregation/, docs/aggregation.md) ----------------------

#: Days of DailyJobStat rows kept: `cleanup-old-data` (type `daily-stats` or `all`) deletes
#: older days whatever its `daysOld`, which is about raw rows, not a year's charts.
CATALOG_DAILY_STATS_RETENTION_DAYS = env.int("CATALOG_DAILY_STATS_RETENTION_DAYS", default=400,
                                             validate=Range(min=1))  # fmt: skip

# --- Catalog reports (catalog/reports/, docs/reports.md) ---------------------------------

#: Rows a PDF report holds at most (reportlab keeps a document's pages in memory until it
#: is saved); CSV reports have no cap.
CATALOG_REPORT_PDF_MAX_ROWS = env.int("CATALOG_REPORT_PDF_MAX_ROWS", default=10_000,
                                      validate=Range(min=1))  # fmt: skip

# --- Webhooks (notifications/webhooks/, docs/webhooks.md) ------------------------------

#: Deliver to private, loopback, link-local and reserved addresses (tests, a private network).
WEBHOOK_ALLOW_PRIVATE = env.bool("WEBHOOK_ALLOW_PRIVATE", default=False)
#: Final failures in a row (after their retries) that disable an endpoint.
WEBHOOK_DISABLE_AFTER_FAILURES = env.int("WEBHOOK_DISABLE_AFTER_FAILURES", default=10,
                                         validate=Range(min=1))  # fmt: skip
#: Seconds to connect, and to wait for each read or write, per request.
WEBHOOK_CONNECT_TIMEOUT_SECONDS = env.float("WEBHOOK_CONNECT_TIMEOUT_SECONDS", default=5.0,
                                            validate=Range(min=0.1))  # fmt: skip
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=10.0,
                                    validate=Range(min=0.1))  # fmt: skip
#: Redirects followed per attempt, each target checked as the first one is.
WEBHOOK_MAX_REDIRECTS = env.int("WEBHOOK_MAX_REDIRECTS", default=3, validate=Range(min=0))
#: The longest `Retry-After` honoured (seconds); a longer one waits this long.
WEBHOOK_MAX_RETRY_AFTER_SECONDS = env.int("WEBHOOK_MAX_RETRY_AFTER_SECONDS", default=3600,
                                          validate=Range(min=1))  # fmt: skip

#: A message or webhook delivery still queued this many minutes after it was written, with
#: no job in the registry, has its job enqueued again by `sweep-notifications`.
NOTIFICATIONS_REQUEUE_AFTER_MINUTES = env.int("NOTIFICATIONS_REQUEUE_AFTER_MINUTES", default=10,
                                              validate=Range(min=1))  # fmt: skip

# --- Alerts (notifications/alerts/, docs/notifications.md "Alerts") ----------------------

#: Each threshold: ALERT_<KEY> for every queue, QUEUE_<NAME>_ALERT_<KEY> for one queue;
#: `off` turns the rule off (everywhere, or for that queue).
_ALERT_KEYS = {
    # key: (parse, default, low, high)
    "WAITING_DEPTH": (int, 1000, 0, None),  # waiting jobs over this
    "FAILURE_RATE": (float, 0.05, 0.0, 1.0),  # failed / finished over this, in the window
    "FAILURE_WINDOW_MINUTES": (int, 15, 1, 60),
    "FAILURE_MIN_FINISHED": (int, 10, 1, None),  # fewer finished jobs in the window: no alert
    "STALLED_MINUTES": (int, 10, 0, 60),  # jobs waiting, none finished for this long
    "NO_WORKER_MINUTES": (int, 2, 0, None),  # jobs waiting this long, no live worker on it
}


def _alert_value(variable: str, default):
    parse, fallback, low, high = _ALERT_KEYS[variable.rsplit("ALERT_", 1)[1]]
    raw = env.str(variable, default="").strip()
    if not raw:
        return default
    if raw.lower() == "off":
        return None
    try:
        value = parse(raw)
        if value < low or (high is not None and value > high):
            raise ValueError
        return value
    except ValueError:
        _invalid.append(
            f"{variable}: expected off or a {parse.__name__} in [{low}, {high or '...'}]"
        )
        return default


#: The alert rules' thresholds: the defaults, and QUEUES[name] overrides (only those set).
ALERTS: dict = {key: _alert_value(f"ALERT_{key}", spec[1]) for key, spec in _ALERT_KEYS.items()}
ALERTS["QUEUES"] = {
    name: found
    for name in JOBYARD_QUEUES
    if (found := {key: _alert_value(f"QUEUE_{name.upper()}_ALERT_{key}", ALERTS[key])
                  for key in _ALERT_KEYS if env.str(f"QUEUE_{name.upper()}_ALERT_{key}", default="")})
}  # fmt: skip
#: Redis's used memory over this percentage of maxmemory (no alert when maxmemory is 0).
ALERTS["REDIS_MEMORY_PERCENT"] = env.float("ALERT_REDIS_MEMORY_PERCENT", default=80.0,
                                           validate=Range(min=1, max=100))  # fmt: skip
#: A worker whose heartbeat stopped without a goodbye (killed, OOM, a lost host).
ALERTS["WORKER_LOST"] = env.bool("ALERT_WORKER_LOST", default=True)
#: Who is told: email addresses (comma-separated); webhook endpoints subscribe to
#: alert.opened / alert.resolved themselves.
ALERT_EMAILS = env.list("ALERT_EMAILS", default=[])
#: Operators emailed about dead jobs (failed past their attempts, `job.dead`), by the
#: `webhook_events` loop: comma-separated addresses, none (off) by default. One digest per
#: queue and job type per JOB_DEAD_DIGEST_SECONDS, however many die (docs/notifications.md).
JOB_DEAD_EMAILS = env.list("JOB_DEAD_EMAILS", default=[])
JOB_DEAD_DIGEST_SECONDS = env.int("JOB_DEAD_DIGEST_SECONDS", default=60,
                                  validate=Range(min=1, max=86400))  # fmt: skip

# --- SMS and WhatsApp (notifications/channels/sms.py, docs/notifications.md) ------------

#: `console` prints each message in the worker's log; `http` POSTs it to SMS_PROVIDER_URL
#: (Twilio's shape: a form with From, To, Body, basic auth with the account sid and token).
SMS_PROVIDER = env.str("SMS_PROVIDER", default="console", validate=OneOf(["console", "http"]))
SMS_PROVIDER_URL = env.str("SMS_PROVIDER_URL", default="")
SMS_ACCOUNT_SID = env.str("SMS_ACCOUNT_SID", default="")
SMS_AUTH_TOKEN = env.str("SMS_AUTH_TOKEN", default="")
#: The sender numbers (E.164), for SMS and for WhatsApp.
SMS_FROM = env.str("SMS_FROM", default="")
WHATSAPP_FROM = env.str("WHATSAPP_FROM", default="")
#: Seconds to connect, and to wait for each read or write, per request to the provider.
SMS_CONNECT_TIMEOUT_SECONDS = env.float("SMS_CONNECT_TIMEOUT_SECONDS", default=5.0,
                                        validate=Range(min=0.1))  # fmt: skip
SMS_TIMEOUT_SECONDS = env.float("SMS_TIMEOUT_SECONDS", default=10.0, validate=Range(min=0.1))
#: The longest `Retry-After` from the provider honoured (seconds).
SMS_MAX_RETRY_AFTER_SECONDS = env.int("SMS_MAX_RETRY_AFTER_SECONDS", default=3600,
                                      validate=Range(min=1))  # fmt: skip
if SMS_PROVIDER == "http" and not SMS_PROVIDER_URL:
    raise ImproperlyConfigured("SMS_PROVIDER=http needs SMS_PROVIDER_URL")

# --- Email ----------------------------------------------------------------------------

_email = env.dj_email_url("EMAIL_URL", default="console://")
# Django's SMTP backend, but each email handed over in two steps so that a worker killed
# mid-send never makes it arrive twice (notifications/smtp.py, docs/notifications.md "Once").
if _email["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend":
    _email["EMAIL_BACKEND"] = "notifications.smtp.EmailBackend"
vars().update(_email)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="jobyard@localhost")
#: At most this many emails a minute to one recipient domain, all workers (0: no limit);
#: over it, the job waits and retries (docs/notifications.md, "Email").
EMAIL_DOMAIN_RATE_LIMIT = env.int("EMAIL_DOMAIN_RATE_LIMIT", default=0)

# --- Security: on by default when DEBUG is off -------------------------------------------

_secure = not DEBUG
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=_secure)
#: Probes and Prometheus speak plain HTTP inside the cluster; they must not be redirected.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=_secure)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=_secure)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if _secure else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=_secure)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=_secure)
if env.bool("SECURE_PROXY_SSL_HEADER", default=_secure):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Processes --------------------------------------------------------------------------

#: "user:password"; Flower refuses to start without it outside DEBUG (see Procfile).
FLOWER_BASIC_AUTH = env.str("FLOWER_BASIC_AUTH", default="")
FLOWER_URL = env.str("FLOWER_URL", default="http://127.0.0.1:5555/")
COBS_API_URL = _as_str(
    env.url("COBS_API_URL", default="https://cobs.si/api/comet_list.api", schemes={"http", "https"})
)
SENTRY_DSN = env.str("SENTRY_DSN", default="")

# --- Logging: structlog, JSON in production, readable lines in a terminal -----------------

LOG_FORMAT = env.str(
    "LOG_FORMAT", default="console" if DEBUG else "json", validate=OneOf(["json", "console"])
)
LOG_LEVEL = env.str(
    "LOG_LEVEL", default="INFO", validate=OneOf(["DEBUG", "INFO", "WARNING", "ERROR"])
)

try:
    env.seal()
except EnvValidationError as exc:
    _invalid[:0] = [
        f"{name}: {' '.join(map(str, msgs))}" for name, msgs in exc.error_messages.items()
    ]

if FLOWER_BASIC_AUTH and ":" not in FLOWER_BASIC_AUTH:
    _invalid.append("FLOWER_BASIC_AUTH: expected user:password")
if _invalid:
    raise ImproperlyConfigured(f"Invalid environment: {'; '.join(_invalid)}")

from project.logging import configure_logging  # noqa: E402

# Django's own dictConfig step is replaced by ours, which also configures structlog.
LOGGING_CONFIG = None
configure_logging(LOG_FORMAT, LOG_LEVEL)

if SENTRY_DSN:
    try:
        import sentry_sdk
    except ImportError as exc:
        raise ImproperlyConfigured(
            "SENTRY_DSN is set but sentry-sdk is not installed: pip install 'jobyard[sentry]'"
        ) from exc
    sentry_sdk.init(dsn=SENTRY_DSN, send_default_pii=False)
