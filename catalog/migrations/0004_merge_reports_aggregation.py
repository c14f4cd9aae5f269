"""The reports and daily aggregation parts were built side by side."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("catalog", "0003_reports"), ("catalog", "0003_aggregation")]
    operations = []
