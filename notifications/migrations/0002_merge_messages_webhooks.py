"""The messages and webhooks parts were built side by side, each with its first migration."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("notifications", "0001_messages"), ("notifications", "0001_webhooks")]
    operations = []
