import os

import django
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django.setup(set_prefix=False)

# Traces, when OTEL_EXPORTER_OTLP_ENDPOINT is set (tasks/tracing.py): Django's
# instrumentation must be in place before the handler loads its middleware.
from tasks import tracing  # noqa: E402
from tasks.redis_settings import warn_once  # noqa: E402

tracing.setup("jobyard-web", django=True, celery=True)
application = get_wsgi_application()

# Warn at start, once, when Redis's settings can lose jobs (tasks/redis_settings.py).
warn_once("web")
