"""django.contrib.admin with Jobyard's site (tasks/admin_site.py) as `admin.site`.

Its own module: an AdminConfig in tasks/apps.py would make two default app configs there.
"""

from django.contrib.admin.apps import AdminConfig


class JobyardAdminConfig(AdminConfig):
    default_site = "tasks.admin_site.JobyardAdminSite"
