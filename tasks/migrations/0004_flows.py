# The archive's state `waiting-children`: a flow's parent waiting for its children.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0003_archivegap"),
    ]

    operations = [
        migrations.AlterField(
            model_name="jobrecord",
            name="state",
            field=models.CharField(
                choices=[
                    ("waiting", "waiting"),
                    ("delayed", "delayed"),
                    ("active", "active"),
                    ("completed", "completed"),
                    ("failed", "failed"),
                    ("cancelled", "cancelled"),
                    ("waiting-children", "waiting-children"),
                ],
                max_length=16,
            ),
        ),
    ]
