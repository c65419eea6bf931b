import django_filters
from django import forms

from .models import Workspace


class WorkspaceFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        field_name="name", lookup_expr="icontains", label="Name", widget=forms.SearchInput
    )
    status = django_filters.ChoiceFilter(
        label="Status",
        choices=[("active", "Active"), ("archived", "Archived")],
        method="filter_status",
        empty_label="Any",
    )

    class Meta:
        model = Workspace
        fields = ["q", "status"]

    def filter_status(self, queryset, name, value):
        return queryset.filter(archived_at__isnull=(value == "active"))
