import django_filters

from .models import AuditEvent
from .registry import ACTIONS


class AuditEventFilter(django_filters.FilterSet):
    action = django_filters.ChoiceFilter(choices=sorted(ACTIONS.items()), empty_label="Any")
    actor = django_filters.CharFilter(
        field_name="actor_label", lookup_expr="icontains", label="Actor"
    )
    since = django_filters.DateFilter(
        field_name="created_at", lookup_expr="date__gte", label="From (YYYY-MM-DD)"
    )
    until = django_filters.DateFilter(
        field_name="created_at", lookup_expr="date__lte", label="Until (YYYY-MM-DD)"
    )

    class Meta:
        model = AuditEvent
        fields = ["action", "actor", "since", "until"]
