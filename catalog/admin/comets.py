from django.contrib import admin
from django.db.models import QuerySet

from catalog.models import Comet


class MagnitudeRange(admin.SimpleListFilter):
    """Current magnitude in bands (smaller is brighter)."""

    title = "current magnitude"
    parameter_name = "magnitude"
    #: value -> (label, brightest included, faintest excluded)
    BANDS = {
        "naked-eye": ("brighter than 6", None, 6),
        "binoculars": ("6 to 10", 6, 10),
        "small-scope": ("10 to 13", 10, 13),
        "large-scope": ("13 to 16", 13, 16),
        "faint": ("16 and fainter", 16, None),
    }

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _, _) in self.BANDS.items()] + [
            ("unknown", "unknown")
        ]

    def queryset(self, request, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value == "unknown":
            return queryset.filter(current_magnitude__isnull=True)
        if value not in self.BANDS:
            return queryset
        _, low, high = self.BANDS[value]
        if low is not None:
            queryset = queryset.filter(current_magnitude__gte=low)
        if high is not None:
            queryset = queryset.filter(current_magnitude__lt=high)
        return queryset


@admin.register(Comet)
class CometAdmin(admin.ModelAdmin):
    list_display = ("name", "fullname", "type", "current_magnitude", "perihelion_date",
                    "peak_magnitude", "is_observed", "is_active", "last_seen")  # fmt: skip
    list_filter = ("type", "is_active", "is_observed", MagnitudeRange, "source")
    search_fields = ("name", "fullname", "mpc_name", "icq_name")
    ordering = ("current_magnitude", "name")
    readonly_fields = ("first_seen", "last_seen")
    date_hierarchy = "perihelion_date"
