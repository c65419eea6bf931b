import django_filters
from django.db.models import Q

from .models import Membership, Role


class MemberFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="filter_text", label="Search")
    role = django_filters.ChoiceFilter(choices=Role.choices, empty_label="Any role")

    class Meta:
        model = Membership
        fields = ["q", "role"]

    def filter_text(self, queryset, name, value):
        return queryset.filter(Q(user__email__icontains=value) | Q(user__name__icontains=value))
