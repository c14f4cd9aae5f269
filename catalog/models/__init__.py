"""The catalog's models, one module per part of the app, re-exported here."""

from catalog.models.aggregation import *  # noqa: F403
from catalog.models.aggregation import __all__ as _aggregation_all
from catalog.models.comets import *  # noqa: F403
from catalog.models.comets import __all__ as _comets_all
from catalog.models.imports import *  # noqa: F403
from catalog.models.imports import __all__ as _imports_all
from catalog.models.reports import *  # noqa: F403
from catalog.models.reports import __all__ as _reports_all

__all__ = [*_aggregation_all, *_comets_all, *_imports_all, *_reports_all]
