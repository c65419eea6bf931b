"""The audit log's filters: actor, action, target type, target, IP address and a period (a preset
or a date range, in the organization's time zone). Bad values are form errors, never a 500."""

import datetime as dt
import ipaddress

import django_filters
from django import forms
from django.db.models import Q
from django.utils import timezone

from .models import AuditEvent
from .registry import ACTIONS, TARGET_TYPES, target_type_label

PERIODS = {"24h": dt.timedelta(hours=24), "7d": dt.timedelta(days=7), "30d": dt.timedelta(days=30)}
PERIOD_CHOICES = [("24h", "Last 24 hours"), ("7d", "Last 7 days"), ("30d", "Last 30 days")]


class DateInput(forms.DateInput):
    input_type = "date"


class AuditEventFilterForm(forms.Form):
    def clean_ip(self):
        value = (self.cleaned_data.get("ip") or "").strip()
        if value:
            try:
                value = str(ipaddress.ip_address(value))
            except ValueError:
                raise forms.ValidationError(
                    f"“{value}” is not an IP address (e.g. 203.0.113.9 or 2001:db8::1)."
                ) from None
        return value

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            self.add_error("until", "The end date is before the start date.")
        return cleaned


class AuditEventFilter(django_filters.FilterSet):
    actor = django_filters.CharFilter(
        field_name="actor_label", lookup_expr="icontains", label="Actor",
        widget=forms.TextInput(attrs={"placeholder": "email"}),
    )  # fmt: skip
    action = django_filters.ChoiceFilter(
        choices=sorted(ACTIONS.items(), key=lambda item: item[1]),
        empty_label="Any action",
        label="Action",
    )
    target_type = django_filters.ChoiceFilter(
        choices=sorted(TARGET_TYPES.items(), key=lambda item: item[1]),
        empty_label="Any type",
        label="Target type",
    )
    target = django_filters.CharFilter(method="filter_target", label="Target")
    ip = django_filters.CharFilter(method="filter_ip", label="IP address")
    period = django_filters.ChoiceFilter(
        choices=PERIOD_CHOICES, empty_label="Any time", label="Period", method="filter_period"
    )
    since = django_filters.DateFilter(
        method="filter_since", label="From", widget=DateInput
    )  # fmt: skip
    until = django_filters.DateFilter(method="filter_until", label="Until", widget=DateInput)

    class Meta:
        model = AuditEvent
        fields = ["actor", "action", "target_type", "target", "ip", "period", "since", "until"]
        form = AuditEventFilterForm

    def __init__(self, *args, organization=None, **kwargs):
        super().__init__(*args, **kwargs)
        request = kwargs.get("request")
        self.organization = organization or getattr(request, "organization", None)
        # Types recorded in this log that the registry does not name yet are offered too.
        field = self.filters["target_type"].field
        known = dict(field.choices)
        if self.organization is not None:
            present = (
                AuditEvent.objects.filter(organization=self.organization)
                .exclude(target_type="")
                .order_by()
                .values_list("target_type", flat=True)
                .distinct()
            )
            extra = [(t, target_type_label(t)) for t in present if t not in known]
            field.choices = [*field.choices, *sorted(extra, key=lambda item: item[1])]

    def filter_target(self, queryset, name, value):
        value = value.strip()
        return queryset.filter(Q(target_label__icontains=value) | Q(target_id=value))

    def filter_ip(self, queryset, name, value):
        return queryset.filter(ip_address=value)

    def _zone(self):
        return self.organization.tzinfo if self.organization is not None else dt.UTC

    def _midnight(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(0), tzinfo=self._zone())

    def filter_period(self, queryset, name, value):
        return queryset.filter(created_at__gte=timezone.now() - PERIODS[value])

    def filter_since(self, queryset, name, value):
        return queryset.filter(created_at__gte=self._midnight(value))

    def filter_until(self, queryset, name, value):
        return queryset.filter(created_at__lt=self._midnight(value + dt.timedelta(days=1)))
