"""The usage dashboard's filters, read from the URL (a view can be shared by its address).

A period is a preset (last 7 or 30 days, this month, last month) or a custom range of dates, both
in the organization's time zone; a start or end date in the URL means a custom range. Values that
are wrong (a date that is not one, an end before the start, a key or workspace the member cannot
see, a model never used) are form errors shown on the page, never a 500.

The key and workspace filters offer the console's own keys and workspaces and, to those who see
the whole organization, Anthropic's met by the usage import (`ImportedName`: negative ids, the
ids their rollups carry, decision 0013), in a group of their own.
"""

from __future__ import annotations

import datetime as dt
import functools

from django import forms
from django.utils.html import conditional_escape, escape
from django.utils.safestring import SafeString

from members.models import Membership

from . import selectors
from .models import ImportedName, Source

PERIODS = [
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
    ("month", "This month"),
    ("last_month", "Last month"),
    ("custom", "Custom"),
]
DEFAULT_PERIOD = "7d"
MAX_DAYS = 732  # two years: older raw events are gone anyway (retention), rollups stay
GROUP_CHOICES = [("key", "API key"), ("model", "model"), ("workspace", "workspace")]  # "By …"
METRIC_CHOICES = [("cost", "Cost"), ("tokens", "Tokens"), ("requests", "Requests")]
LARGEST_CHOICES = [("cost", "cost"), ("tokens", "tokens")]  # "By …"
GRANULARITY_CHOICES = [("day", "Day"), ("hour", "Hour"), ("event", "Single requests")]


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, attrs=None):
        super().__init__(attrs, format="%Y-%m-%d")


class Select(forms.Select):
    """Django's select, written here: byte for byte what its templates write
    (django/forms/widgets/select.html, select_option.html, attrs.html), without including a
    template for each option (the template engine's include per option was a large part of the
    page's CPU with 50 keys, bench_dashboard). tests/test_usage_dashboard.py compares the two."""

    def render(self, name, value, attrs=None, renderer=None):
        widget = self.get_context(name, value, attrs)["widget"]
        parts = [f'<select name="{conditional_escape(widget["name"])}"{_attrs(widget["attrs"])}>']
        for group_name, options, _index in widget["optgroups"]:
            if group_name:
                parts.append(f'\n  <optgroup label="{conditional_escape(group_name)}">')
            for option in options:
                parts.append(
                    f'\n  <option value="{escape(option["value"])}"{_attrs(option["attrs"])}>'
                    f"{conditional_escape(option['label'])}</option>\n"
                )
            if group_name:
                parts.append("\n  </optgroup>")
        parts.append("\n</select>")  # the renderer strips the template's last newline
        return SafeString("".join(parts))


def _attrs(attrs: dict) -> str:
    """django/forms/widgets/attrs.html."""
    return "".join(
        f" {conditional_escape(name)}" + ("" if value is True else f'="{escape(value)}"')
        for name, value in attrs.items()
        if value is not False
    )


def _select(**attrs):
    return Select(attrs={"class": "form-select form-select-sm", **attrs})


def _id_choice(**options) -> forms.TypedChoiceField:
    """A select of ids (the console's, positive, and the import's, negative), whose choices the
    form sets per organization: a callable, read (one plain query each) only when the field is
    shown or a value is checked."""
    return forms.TypedChoiceField(coerce=int, empty_value=None, required=False, widget=_select(),
                                  **options)  # fmt: skip


def _choices(empty: str, own, imported) -> list:
    """The choices of an id select: the console's own, then a group of the imported ones."""
    imported = [(n.local_id, _imported_label(n)) for n in imported]
    if not imported:
        return [("", empty), *own]
    return [("", empty), ("Console", list(own)), ("Imported from Anthropic", imported)]


def _imported_label(name: ImportedName) -> str:
    label = name.name or name.anthropic_id
    return f"{label} (Anthropic, {name.hint})" if name.hint else f"{label} (Anthropic)"


class UsageFilterForm(forms.Form):
    period = forms.ChoiceField(choices=PERIODS, required=False, widget=_select(), label="Period")
    start = forms.DateField(
        required=False, label="From", widget=DateInput(attrs={"class": "form-control-sm"})
    )
    end = forms.DateField(
        required=False, label="To", widget=DateInput(attrs={"class": "form-control-sm"})
    )
    model = forms.ChoiceField(required=False, label="Model", widget=_select())
    key = _id_choice(label="API key")
    workspace = _id_choice(label="Workspace")
    source = forms.ChoiceField(
        choices=[("", "All sources"), *Source.choices], required=False, label="Source",
        widget=_select(),
    )  # fmt: skip
    # How the page shows what is filtered (not filters: they change no total).
    group = forms.ChoiceField(choices=GROUP_CHOICES, required=False, widget=forms.HiddenInput)
    metric = forms.ChoiceField(choices=METRIC_CHOICES, required=False, widget=forms.HiddenInput)
    largest = forms.ChoiceField(choices=LARGEST_CHOICES, required=False, widget=forms.HiddenInput)
    granularity = forms.ChoiceField(
        choices=GRANULARITY_CHOICES, required=False, widget=forms.HiddenInput
    )

    FILTERS = ("period", "start", "end", "model", "key", "workspace", "source")

    def __init__(
        self,
        data,
        *,
        membership: Membership,
        today: dt.date | None = None,
        names: selectors.Names | None = None,
    ):
        # Only the form's own names count: other query parameters (sort, page) are not filters.
        # Always bound: no parameters at all is valid too (the default period, everything).
        super().__init__({k: v for k, v in data.items() if k in self.base_fields})
        self.given = dict(self.data)  # as the URL had it (clean() fills in the period)
        self.membership = membership
        organization = membership.organization
        self.today = today or dt.datetime.now(organization.tzinfo).date()
        self.own_key_ids = selectors.visible_key_ids(membership)
        own = self.own_key_ids
        if own is not None:
            # Imported usage is Anthropic's keys': a Member's own usage is the gateway's.
            del self.fields["source"]

        # The keys, workspaces and imported names the page labels its rows with (the view's
        # `names`, else read here): read once for both, and only when a choice is shown or a
        # value checked (functools.cache: Django reads a callable's choices again each time
        # they are iterated — the value's check, the widget's "required" test, its options).
        @functools.cache
        def listed() -> selectors.Names:
            return names or selectors.Names.of(organization)

        def key_choices():
            keys = [k for k in listed().key_list if own is None or k.pk in own]
            imported = [] if own is not None else listed().imported_list
            return _choices(
                "All keys",
                ((key.pk, f"{key.name} ({key.display})") for key in keys),
                (n for n in imported if n.kind == ImportedName.Kind.API_KEY),
            )

        def workspace_choices():
            workspaces = listed().workspace_list
            imported = [] if own is not None else listed().imported_list
            if own is not None:
                used = {k.workspace_id for k in listed().key_list if k.pk in own}
                workspaces = [(pk, name) for pk, name in workspaces if pk in used]
            return _choices(
                "All workspaces",
                workspaces,
                (n for n in imported if n.kind == ImportedName.Kind.WORKSPACE),
            )

        self.fields["key"].choices = functools.cache(key_choices)
        self.fields["workspace"].choices = functools.cache(workspace_choices)
        models = selectors.models_used(organization, self.own_key_ids)
        self.fields["model"].choices = [("", "All models"), *((m, m) for m in models if m)]

    @property
    def shown_period(self) -> str:
        """The period the page shows ("custom" shows the date fields)."""
        if self.is_valid():
            return self.cleaned_data["period"]
        period = self.data.get("period") or ""
        return "custom" if period == "custom" or self.data.get("start") else period

    def shown_date(self, name: str) -> str:
        if self.is_valid():
            return self.cleaned_data[name].isoformat()
        return self.data.get(name) or ""

    @property
    def shown_start(self) -> str:
        return self.shown_date("start")

    @property
    def shown_end(self) -> str:
        return self.shown_date("end")

    @property
    def date_fields(self) -> list:
        return [self["start"], self["end"]]

    @property
    def choice_fields(self) -> list:
        """The select filters, in order, those this member has."""
        names = ("model", "key", "workspace", "source")
        return [self[name] for name in names if name in self.fields]

    @property
    def filters_set(self) -> int:
        return sum(1 for name in self.FILTERS if (self.given.get(name) or "").strip())

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        period = cleaned.get("period") or ""
        if self.errors.get("start") or self.errors.get("end") or self.errors.get("period"):
            return cleaned
        # A preset wins over dates left in the URL; dates alone mean a custom period.
        if period == "custom" or (not period and (start or end)):
            cleaned["period"] = "custom"
            if not start and not end:  # just switched to custom: start from the last 7 days
                cleaned["start"], cleaned["end"] = period_dates(DEFAULT_PERIOD, self.today)
            elif not (start and end):
                self.add_error("end" if start else "start", "Enter both dates of the period.")
            elif end < start:
                self.add_error("end", "The end date is before the start date.")
            elif (end - start).days + 1 > MAX_DAYS:
                self.add_error("end", f"A period is at most {MAX_DAYS} days.")
        else:
            cleaned["period"] = period or DEFAULT_PERIOD
            cleaned["start"], cleaned["end"] = period_dates(cleaned["period"], self.today)
        self.data["period"] = cleaned["period"]  # the select shows the period in effect
        return cleaned

    def scope(self) -> selectors.UsageScope:
        """The scope of a valid form."""
        data = self.cleaned_data
        return selectors.UsageScope(
            organization=self.membership.organization,
            start=data["start"],
            end=data["end"],
            model=data.get("model") or "",
            api_key_id=data.get("key"),
            workspace_id=data.get("workspace"),
            source=data.get("source") or "",
            own_key_ids=self.own_key_ids,
        )

    def choice(self, name: str, default: str) -> str:
        if self.is_valid():
            return self.cleaned_data.get(name) or default
        value = self.data.get(name) or ""
        return value if value in dict(self.fields[name].choices) else default


def period_dates(period: str, today: dt.date) -> tuple[dt.date, dt.date]:
    """First and last day (inclusive) of a preset period ending today."""
    if period == "30d":
        return today - dt.timedelta(days=29), today
    if period == "month":
        return today.replace(day=1), today
    if period == "last_month":
        last = today.replace(day=1) - dt.timedelta(days=1)
        return last.replace(day=1), last
    return today - dt.timedelta(days=6), today


class NotificationPreferenceForm(forms.Form):
    """A person's usage emails (their profile page)."""

    weekly_digest = forms.BooleanField(
        required=False,
        label="Weekly usage digest",
        help_text="Every Monday morning, last week's usage of each organization where you are an "
        "Admin or Billing member, by workspace and model, with the CSV attached.",
    )


class AnthropicAdminKeyForm(forms.Form):
    """The Anthropic Admin API key of the usage import (never shown again once saved)."""

    api_key = forms.CharField(
        label="Anthropic Admin API key",
        max_length=300,
        strip=True,
        widget=forms.PasswordInput(attrs={"autocomplete": "off", "placeholder": "sk-ant-admin…"}),
        help_text="An Admin API key of your Anthropic organization (Anthropic's Console, "
        "Settings > Admin keys). Stored encrypted; only its last four characters are shown.",
    )

    def clean_api_key(self) -> str:
        from .anthropic_import import key_problem

        value = self.cleaned_data["api_key"]
        problem = key_problem(value)
        if problem:
            raise forms.ValidationError(problem)
        return value
