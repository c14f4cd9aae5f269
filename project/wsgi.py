import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
application = get_wsgi_application()

# Warn at start, once, when Redis's settings can lose jobs (tasks/redis_settings.py).
from tasks.redis_settings import warn_once  # noqa: E402

warn_once("web")
