"""The alerts and reminders parts were built side by side."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("notifications", "0003_alerts"), ("notifications", "0003_reminders")]
    operations = []
