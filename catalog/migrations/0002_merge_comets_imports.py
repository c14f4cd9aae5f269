"""The comets and imports parts were built side by side, each with its first migration."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("catalog", "0001_comets"), ("catalog", "0001_imports")]
    operations = []
