"""Every model change of every app of this project has its migration."""

from io import StringIO
from pathlib import Path

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db.migrations.loader import MigrationLoader

BASE_DIR = Path(__file__).resolve().parent.parent
#: The project's apps as INSTALLED_APPS names them; the check finds them by where they live,
#: so an app added later is covered without a change here.
PROJECT_APPS = {"tasks", "jobyard_api", "scheduling", "catalog", "notifications"}


def local_app_labels() -> list[str]:
    """The installed apps whose code is in this repository, the tests' job app aside."""
    labels = []
    for config in apps.get_app_configs():
        where = Path(config.path).resolve()
        if not where.is_relative_to(BASE_DIR):
            continue
        top = where.relative_to(BASE_DIR).parts[0]
        if not top.startswith(".") and top != "tests":  # .venv holds the dependencies
            labels.append(config.label)
    return labels


@pytest.mark.pure
def test_it_covers_every_app_of_the_project():
    assert set(local_app_labels()) >= PROJECT_APPS


@pytest.mark.django_db  # makemigrations checks the migration history against the database
def test_every_model_change_has_its_migration():
    labels = local_app_labels()
    migrated = MigrationLoader(None, ignore_no_migrations=True).migrated_apps
    unmigrated = [
        label for label in labels if list(apps.get_app_config(label).get_models())
        and label not in migrated
    ]  # fmt: skip
    assert not unmigrated, f"apps with models and no migrations package: {unmigrated}"
    out = StringIO()
    try:
        call_command("makemigrations", *labels, "--check", "--dry-run", stdout=out)
    except SystemExit:
        pytest.fail(f"model changes without a migration:\n{out.getvalue()}", pytrace=False)
