import django_filters
from django import forms
from django.db.models import Q

from members.policy import can
from orgs.models import Workspace

from .models import AdminKey, ApiKey, KeyStatus
from .selectors import key_owners, key_workspaces, with_status


class ApiKeyFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="filter_text", label="Search", widget=forms.SearchInput)
    workspace = django_filters.ModelChoiceFilter(
        queryset=Workspace.objects.none(), label="Workspace", empty_label="Any"
    )
    status = django_filters.ChoiceFilter(
        choices=KeyStatus.choices, method="filter_status", label="Status", empty_label="Any"
    )
    owner = django_filters.ModelChoiceFilter(
        queryset=key_owners, label="Owner", empty_label="Anyone"
    )

    class Meta:
        model = ApiKey
        fields = ["q", "workspace", "status", "owner"]

    def __init__(self, *args, request=None, **kwargs):
        super().__init__(*args, request=request, **kwargs)
        membership = request.membership
        self.filters["workspace"].queryset = key_workspaces(membership)
        self.filters["owner"].queryset = key_owners(membership)
        if not can(membership, "apikeys.view_all"):
            # Members see only their own keys: an owner filter would have one choice.
            del self.filters["owner"]

    def filter_text(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(
            Q(name__icontains=value)
            | Q(prefix__icontains=value)
            | Q(last4=value)
            | Q(owner__email__icontains=value)
        )

    def filter_status(self, queryset, name, value):
        return with_status(queryset, value)


class AdminKeyFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="filter_text", label="Search", widget=forms.SearchInput)
    status = django_filters.ChoiceFilter(
        choices=[(KeyStatus.ACTIVE, "Active"), (KeyStatus.REVOKED, "Revoked")],
        method="filter_status",
        label="Status",
        empty_label="Any",
    )

    class Meta:
        model = AdminKey
        fields = ["q", "status"]

    def filter_text(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(
            Q(name__icontains=value)
            | Q(prefix__icontains=value)
            | Q(last4=value)
            | Q(owner__email__icontains=value)
        )

    def filter_status(self, queryset, name, value):
        return queryset.filter(revoked_at__isnull=value == KeyStatus.ACTIVE)
