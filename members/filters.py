import django_filters
from django import forms
from django.db.models import Q

from .models import Invitation, InvitationStatus, Membership, Role


class MemberFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="filter_text", label="Search", widget=forms.SearchInput)
    role = django_filters.ChoiceFilter(choices=Role.choices, empty_label="Any role")

    class Meta:
        model = Membership
        fields = ["q", "role"]

    def filter_text(self, queryset, name, value):
        return queryset.filter(Q(user__email__icontains=value) | Q(user__name__icontains=value))


class InvitationFilter(django_filters.FilterSet):
    """Filters `members.selectors.invitations_for_list` (which annotates `state_value`)."""

    q = django_filters.CharFilter(
        field_name="email", lookup_expr="icontains", label="Search", widget=forms.SearchInput
    )
    state = django_filters.ChoiceFilter(
        field_name="state_value",
        choices=InvitationStatus.choices,
        empty_label="Any status",
        label="Status",
    )
    role = django_filters.ChoiceFilter(choices=Role.choices, empty_label="Any role")

    class Meta:
        model = Invitation
        fields = ["q", "state", "role"]
