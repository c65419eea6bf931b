"""Billing pages: Company > Billing. Everyone in the organization may look (a Member read-only);
Admins and Billing-only members change things (`billing.manage`). Every POST goes through a
service; card numbers are refused by the forms and hidden from error reports."""

from __future__ import annotations

import csv

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.shortcuts import render as django_render
from django.utils import timezone
from django.views.decorators.debug import sensitive_post_parameters

from apikeys.models import ApiKey
from members.access import org_view
from members.forms import add_service_errors
from members.listing import OrgTableView, spreadsheet_safe
from members.policy import can
from members.selectors import workspaces_for
from orgs.models import Workspace

from . import credits, invoicing, money, periods, selectors, services
from . import increase_requests as increase_requests_service
from .filters import InvoiceFilter, PaymentFilter
from .forms import (
    BillingContactForm,
    CardForm,
    CreditSettingsForm,
    GrantCreditsForm,
    IncreaseApproveForm,
    IncreaseRequestForm,
    InvoicingForm,
    PaymentForm,
    ScopedLimitForm,
    SpendLimitForm,
    VoidForm,
)
from .models import (
    Charge,
    Invoice,
    LimitScope,
    LineGroup,
    PaymentMethod,
    PaymentMethodKind,
    SpendLimit,
)
from .tables import InvoiceTable, PaymentTable


def _may_manage(request) -> bool:
    return can(request.membership, "billing.manage")


def _require_manage(request) -> None:
    if not _may_manage(request):
        raise PermissionDenied("Your role may view billing but not change it.")


def render(request, template: str, context: dict, **kwargs):
    """Pages show times in the organization's time zone."""
    with timezone.override(request.organization.tzinfo):
        return django_render(request, template, context, **kwargs)


def _ctx(request, tab: str, **extra) -> dict:
    return {"nav": "billing", "tab": tab, "may_manage": _may_manage(request), **extra}


# -- overview -------------------------------------------------------------------------------------


@org_view("billing.view")
def overview(request):
    organization = request.organization
    account = selectors.credit_account(organization)
    context = _ctx(
        request,
        "overview",
        statuses=selectors.limit_statuses(organization),
        period_start=periods.period_of(organization.timezone)[0],
        reset=periods.moment_text(periods.period_end_at(organization.timezone)),
        last_invoice=selectors.last_invoice(organization),
        account=account,
        balance=selectors.credit_balance(account) if account else None,
        default_method=selectors.default_payment_method(organization),
        shared_cap=_shared_cap_text(organization),
    )
    return render(request, "billing/overview.html", context)


def _shared_cap_text(organization) -> str | None:
    from django.conf import settings

    from .spend import shared_upstream_cap

    if not settings.GATEWAY_DEFAULT_UPSTREAM_URL:
        return None
    cap = shared_upstream_cap(organization.pk)
    return None if cap is None else money.dollars(cap)


# -- spending limits -------------------------------------------------------------------------------


def _limit_initial(limit: SpendLimit | None) -> dict:
    if limit is None:
        return {"enabled": True, "thresholds": "50, 80, 100", "notify_billing_members": True}
    return {
        "enabled": limit.enabled,
        "cap": money.dollars_input(limit.monthly_cap_micros),
        "thresholds": ", ".join(str(t) for t in limit.thresholds),
        "notify_billing_members": limit.notify_billing_members,
        "extra_recipients": ", ".join(limit.extra_recipients or ()),
        "version": limit.version,
    }


def _save_limit(request, form, **target) -> SpendLimit | None:
    data = form.cleaned_data
    try:
        return services.save_spend_limit(
            organization=request.organization,
            actor=request.user,
            enabled=data["enabled"],
            cap_micros=data["cap"],
            thresholds=data["thresholds"],
            notify_billing_members=data["notify_billing_members"],
            extra_recipients=data["extra_recipients"],
            expected_version=data.get("version"),
            **target,
        )
    except ValidationError as error:
        add_service_errors(form, error)
        return None


@sensitive_post_parameters()
@org_view("billing.view")
def limits(request):
    organization = request.organization
    org_limit = selectors.organization_limit(organization)
    form = SpendLimitForm(initial=_limit_initial(org_limit))
    conflict = None
    if request.method == "POST":
        _require_manage(request)
        form = SpendLimitForm(request.POST)
        if form.is_valid():
            saved = _save_limit(request, form, scope=LimitScope.ORGANIZATION)
            if saved is not None:
                state = "on" if saved.enabled else "off"
                messages.success(
                    request,
                    f"Spending limit saved: {money.dollars(saved.monthly_cap_micros)} a month, "
                    f"alerts at {', '.join(f'{t}%' for t in saved.thresholds)} ({state}).",
                )
                return redirect("billing:limits", organization.slug)
            if any(e.code == "stale" for e in form.errors.as_data().get("__all__", [])):
                conflict = form.non_field_errors()
                org_limit = selectors.organization_limit(organization)
                form = SpendLimitForm(initial=_limit_initial(org_limit))
    context = _ctx(
        request,
        "limits",
        form=form,
        conflict=conflict,
        org_limit=org_limit,
        statuses=selectors.limit_statuses(organization),
        reset=periods.moment_text(periods.period_end_at(organization.timezone)),
        period=periods.period_label(periods.period_of(organization.timezone)[0]),
        fired=selectors.fired_alerts(organization)[:20],
        shared_cap=_shared_cap_text(organization),
    )
    return render(request, "billing/limits.html", context)


def _targets(organization, scope: str) -> list[tuple[str, str]]:
    taken = SpendLimit.objects.filter(organization=organization, scope=scope)
    if scope == LimitScope.WORKSPACE:
        used = set(taken.values_list("workspace_id", flat=True))
        return [
            (str(w.pk), w.name)
            for w in Workspace.objects.filter(organization=organization, archived_at__isnull=True)
            if w.pk not in used
        ]
    used = set(taken.values_list("api_key_id", flat=True))
    return [
        (str(k.pk), f"{k.name} ({k.display}, {k.workspace.name})")
        for k in ApiKey.objects.filter(organization=organization, revoked_at__isnull=True)
        .select_related("workspace")
        .order_by("name")
        if k.pk not in used
    ]


@sensitive_post_parameters()
@org_view("billing.manage")
def limit_new(request):
    organization = request.organization
    scope = request.GET.get("scope") or request.POST.get("scope")
    if scope not in (LimitScope.WORKSPACE, LimitScope.API_KEY):
        scope = LimitScope.WORKSPACE
    targets = _targets(organization, scope)
    form = ScopedLimitForm(request.POST or None, targets=targets, initial=_limit_initial(None))
    if request.method == "POST" and form.is_valid():
        target_id = int(form.cleaned_data["target"])
        if scope == LimitScope.WORKSPACE:
            target = {
                "workspace": get_object_or_404(Workspace, pk=target_id, organization=organization)
            }
        else:
            target = {"api_key": get_object_or_404(ApiKey, pk=target_id, organization=organization)}
        saved = _save_limit(request, form, scope=scope, **target)
        if saved is not None:
            messages.success(request, f"Spending limit set for {saved.target_label}.")
            return redirect("billing:limits", organization.slug)
    return render(
        request,
        "billing/limit_form.html",
        _ctx(request, "limits", form=form, scope=scope, new=True, has_targets=bool(targets)),
    )


def _limit(request, limit_id: int) -> SpendLimit:
    return get_object_or_404(
        SpendLimit.objects.select_related("organization", "workspace", "api_key"),
        pk=limit_id,
        organization=request.organization,
    )


@sensitive_post_parameters()
@org_view("billing.manage")
def limit_edit(request, limit_id: int):
    limit = _limit(request, limit_id)
    if limit.scope == LimitScope.ORGANIZATION:
        return redirect("billing:limits", request.organization.slug)
    form = SpendLimitForm(request.POST or None, initial=_limit_initial(limit))
    conflict = None
    if request.method == "POST" and form.is_valid():
        target = (
            {"workspace": limit.workspace} if limit.workspace_id else {"api_key": limit.api_key}
        )
        saved = _save_limit(request, form, scope=limit.scope, **target)
        if saved is not None:
            messages.success(request, f"Spending limit of {saved.target_label} saved.")
            return redirect("billing:limits", request.organization.slug)
        if any(e.code == "stale" for e in form.errors.as_data().get("__all__", [])):
            conflict = form.non_field_errors()
            limit = SpendLimit.objects.filter(pk=limit.pk).first()
            if limit is None:
                messages.error(request, " ".join(conflict))
                return redirect("billing:limits", request.organization.slug)
            form = SpendLimitForm(initial=_limit_initial(limit))
    return render(
        request,
        "billing/limit_form.html",
        _ctx(request, "limits", form=form, limit=limit, scope=limit.scope, conflict=conflict),
    )


@org_view("billing.manage")
def limit_remove(request, limit_id: int):
    limit = _limit(request, limit_id)
    if limit.scope == LimitScope.ORGANIZATION:
        return redirect("billing:limits", request.organization.slug)
    if request.method == "POST":
        try:
            services.remove_spend_limit(
                limit=limit,
                actor=request.user,
                expected_version=_int(request.POST.get("version")),
            )
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, f"Spending limit of {limit.target_label} removed.")
        return redirect("billing:limits", request.organization.slug)
    return render(request, "billing/limit_remove.html", _ctx(request, "limits", limit=limit))


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# -- credits --------------------------------------------------------------------------------------


@sensitive_post_parameters()
@org_view("billing.view")
def credits_page(request):
    organization = request.organization
    account = selectors.credit_account(organization)
    settings_form = CreditSettingsForm(
        initial={
            "enabled": account.enabled if account else False,
            "auto_recharge": account.auto_recharge if account else False,
            "recharge_threshold": money.dollars_input(account.recharge_threshold_micros)
            if account
            else "",
            "recharge_amount": money.dollars_input(account.recharge_amount_micros)
            if account and account.recharge_amount_micros
            else "",
            "version": account.version if account else None,
        }
    )
    grant_form = GrantCreditsForm()
    if request.method == "POST":
        _require_manage(request)
        if request.POST.get("action") == "grant":
            grant_form = GrantCreditsForm(request.POST)
            if grant_form.is_valid():
                try:
                    credits.grant_credits(
                        organization=organization,
                        actor=request.user,
                        amount_micros=grant_form.cleaned_data["amount"],
                        memo=grant_form.cleaned_data["memo"],
                    )
                except ValidationError as error:
                    add_service_errors(grant_form, error)
                else:
                    messages.success(
                        request, f"{money.dollars(grant_form.cleaned_data['amount'])} granted."
                    )
                    return redirect("billing:credits", organization.slug)
        else:
            settings_form = CreditSettingsForm(request.POST)
            if settings_form.is_valid():
                data = settings_form.cleaned_data
                try:
                    credits.configure_credits(
                        organization=organization,
                        actor=request.user,
                        enabled=data["enabled"],
                        auto_recharge=data["auto_recharge"],
                        recharge_threshold_micros=data["recharge_threshold"] or 0,
                        recharge_amount_micros=data["recharge_amount"] or 0,
                        expected_version=data.get("version"),
                    )
                except ValidationError as error:
                    add_service_errors(settings_form, error)
                else:
                    messages.success(request, "Credit settings saved.")
                    return redirect("billing:credits", organization.slug)
    transactions = account.transactions.select_related("charge")[:50] if account else []
    context = _ctx(
        request,
        "credits",
        account=account,
        balance=selectors.credit_balance(account) if account else None,
        settings_form=settings_form,
        grant_form=grant_form,
        transactions=transactions,
        default_method=selectors.default_payment_method(organization),
    )
    return render(request, "billing/credits.html", context)


@org_view("billing.view")
def receipt(request, charge_id: int):
    charge = get_object_or_404(
        Charge.objects.select_related("payment_method", "organization"),
        pk=charge_id,
        organization=request.organization,
    )
    return render(request, "billing/receipt.html", _ctx(request, "payments", charge=charge))


# -- invoices ---------------------------------------------------------------------------------


class BillingTableView(OrgTableView):
    """A billing tab's table: dates in the organization's zone, the billing nav and `tab`."""

    capability = "billing.view"
    tab = ""

    def render_to_response(self, context, **kwargs):
        with timezone.override(self.organization.tzinfo):
            return super().render_to_response(context, **kwargs)

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            nav="billing",
            tab=self.tab,
            may_manage=can(self.membership, "billing.manage"),
            **kwargs,
        )


class InvoiceListView(BillingTableView):
    table_class = InvoiceTable
    filterset_class = InvoiceFilter
    template_name = "billing/invoice_list.html"
    export_name = "invoices"
    tab = "invoices"

    def get_queryset(self):
        return selectors.invoices_of(self.organization).select_related("organization")


def _invoice(request, invoice_id: int) -> Invoice:
    return get_object_or_404(
        Invoice.objects.select_related("organization"),
        pk=invoice_id,
        organization=request.organization,
    )


def _invoice_context(request, invoice: Invoice, tab="invoices") -> dict:
    lines = list(invoice.lines.all())
    return _ctx(
        request,
        tab,
        invoice=invoice,
        model_lines=[line for line in lines if line.group == LineGroup.MODEL],
        workspace_lines=[line for line in lines if line.group == LineGroup.WORKSPACE],
        payments=invoice.payments.all(),
        period=periods.period_label(invoice.period_start),
        total=money.cents_text(invoice.total_cents),
        due=money.cents_text(invoice.due_cents),
        paid=money.cents_text(invoice.paid_cents),
    )


@org_view("billing.view")
def invoice_detail(request, invoice_id: int):
    invoice = _invoice(request, invoice_id)
    return render(request, "billing/invoice_detail.html", _invoice_context(request, invoice))


@org_view("billing.view")
def invoice_print(request, invoice_id: int):
    invoice = _invoice(request, invoice_id)
    return render(request, "billing/invoice_print.html", _invoice_context(request, invoice))


def _csv_response(filename: str, header: list[str], rows) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(header)
    for row in rows:
        writer.writerow([spreadsheet_safe(v) for v in row])
    return response


@org_view("billing.view")
def invoice_csv(request, invoice_id: int):
    invoice = _invoice(request, invoice_id)
    header = [
        "invoice",
        "period",
        "group",
        "description",
        "requests",
        "input_tokens",
        "output_tokens",
        "cache_write_tokens",
        "cache_read_tokens",
        "amount_usd",
        "amount_micro_usd",
    ]
    rows = [
        [
            invoice.number,
            periods.month_key(invoice.period_start),
            line.group,
            line.description,
            line.requests,
            line.input_tokens,
            line.output_tokens,
            line.cache_write_tokens,
            line.cache_read_tokens,
            f"{line.amount_cents / 100:.2f}",
            line.amount_micros,
        ]
        for line in invoice.lines.all()
    ]
    rows.append(
        [
            invoice.number,
            periods.month_key(invoice.period_start),
            "total",
            "Total",
            "",
            "",
            "",
            "",
            "",
            f"{invoice.total_cents / 100:.2f}",
            invoice.usage_micros,
        ]
    )
    name = f"{request.organization.slug}-invoice-{invoice.number or invoice.pk}.csv"
    return _csv_response(name, header, rows)


@org_view("billing.view")
def invoice_pdf(request, invoice_id: int):
    from .pdf import invoice_pdf_bytes

    invoice = _invoice(request, invoice_id)
    response = HttpResponse(invoice_pdf_bytes(invoice), content_type="application/pdf")
    name = f"{request.organization.slug}-invoice-{invoice.number or invoice.pk}.pdf"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@sensitive_post_parameters()
@org_view("billing.manage")
def invoice_pay(request, invoice_id: int):
    invoice = _invoice(request, invoice_id)
    form = PaymentForm(request.POST or None, initial={"amount": f"{invoice.due_cents / 100:.2f}"})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            invoicing.record_payment(
                invoice=invoice,
                actor=request.user,
                amount_cents=data["amount"] // 10_000,
                kind=data["kind"],
                reference=data["reference"],
                received_on=data["received_on"],
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, f"Payment of {money.dollars(data['amount'])} recorded.")
            return redirect("billing:invoice", request.organization.slug, invoice.pk)
    return render(
        request, "billing/invoice_pay.html", {**_invoice_context(request, invoice), "form": form}
    )


@sensitive_post_parameters()
@org_view("billing.manage")
def invoice_void(request, invoice_id: int):
    invoice = _invoice(request, invoice_id)
    form = VoidForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            invoicing.void_invoice(
                invoice=invoice, actor=request.user, reason=form.cleaned_data["reason"]
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, f"Invoice {invoice.number} voided.")
            return redirect("billing:invoice", request.organization.slug, invoice.pk)
    return render(
        request, "billing/invoice_void.html", {**_invoice_context(request, invoice), "form": form}
    )


class PaymentListView(BillingTableView):
    table_class = PaymentTable
    filterset_class = PaymentFilter
    template_name = "billing/payment_list.html"
    export_name = "payments"
    tab = "payments"

    def get_queryset(self):
        return selectors.payments_of(self.organization).select_related("invoice__organization")

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            charges=selectors.charges_of(self.organization)[:50], **kwargs
        )


# -- payment methods and the contact ----------------------------------------------------------


@org_view("billing.view")
def payment_methods(request):
    organization = request.organization
    context = _ctx(
        request,
        "methods",
        methods=selectors.payment_methods(organization),
        profile=services.billing_profile(organization),
    )
    return render(request, "billing/payment_methods.html", context)


@sensitive_post_parameters()
@org_view("billing.manage")
def payment_method_add(request):
    kind = request.GET.get("kind") or request.POST.get("kind") or PaymentMethodKind.CARD
    if kind not in PaymentMethodKind.values:
        kind = PaymentMethodKind.CARD
    form_class = CardForm if kind == PaymentMethodKind.CARD else InvoicingForm
    form = form_class(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            method = services.add_payment_method(
                organization=request.organization,
                actor=request.user,
                kind=kind,
                **form.cleaned_data,
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, f"{method.label} added.")
            return redirect("billing:payment_methods", request.organization.slug)
    return render(
        request, "billing/payment_method_form.html", _ctx(request, "methods", form=form, kind=kind)
    )


def _method(request, method_id: int) -> PaymentMethod:
    return get_object_or_404(
        PaymentMethod, pk=method_id, organization=request.organization, removed_at__isnull=True
    )


@org_view("billing.manage")
def payment_method_default(request, method_id: int):
    method = _method(request, method_id)
    if request.method == "POST":
        try:
            services.set_default_payment_method(method=method, actor=request.user)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, f"{method.label} is now the default.")
        return redirect("billing:payment_methods", request.organization.slug)
    return render(
        request,
        "billing/payment_method_confirm.html",
        _ctx(request, "methods", method=method, action="default"),
    )


@org_view("billing.manage")
def payment_method_remove(request, method_id: int):
    method = _method(request, method_id)
    if request.method == "POST":
        try:
            services.remove_payment_method(method=method, actor=request.user)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, f"{method.label} removed.")
        return redirect("billing:payment_methods", request.organization.slug)
    return render(
        request,
        "billing/payment_method_confirm.html",
        _ctx(request, "methods", method=method, action="remove"),
    )


@sensitive_post_parameters()
@org_view("billing.manage")
def contact(request):
    profile = services.billing_profile(request.organization)
    initial = {
        "billing_email": profile.billing_email,
        "legal_name": profile.legal_name,
        "address": profile.address,
        "tax_id": profile.tax_id,
        "invoice_prefix": profile.invoice_prefix,
    }
    form = BillingContactForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.update_billing_contact(
                organization=request.organization, actor=request.user, **form.cleaned_data
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, "Billing contact saved.")
            return redirect("billing:payment_methods", request.organization.slug)
    return render(request, "billing/contact_form.html", _ctx(request, "methods", form=form))


# -- per-workspace statements ---------------------------------------------------------------


@org_view("billing.view")
def statements(request):
    organization = request.organization
    months = selectors.months_with_usage(organization)
    current = periods.period_of(organization.timezone)[0]
    if current not in months:
        months.insert(0, current)
    workspaces = Workspace.objects.filter(organization=organization).order_by("name")
    month = periods.parse_month(request.GET.get("month", "")) or current
    rows = []
    for workspace in workspaces:
        spent = selectors.period_spend(organization.pk, month, workspace_id=workspace.pk)
        rows.append({"workspace": workspace, "spent": spent})
    context = _ctx(
        request,
        "statements",
        months=months,
        month=month,
        rows=rows,
        period=periods.period_label(month),
    )
    return render(request, "billing/statements.html", context)


@org_view("billing.view")
def statement(request, workspace_id: int, month: str):
    organization = request.organization
    workspace = get_object_or_404(Workspace, pk=workspace_id, organization=organization)
    start = periods.parse_month(month)
    if start is None:
        raise Http404("No such month.")
    lines = selectors.workspace_statement(organization, workspace.pk, start)
    total = sum(int(line["cost"] or 0) for line in lines)
    if request.GET.get("format") == "csv":
        header = [
            "workspace",
            "period",
            "model",
            "requests",
            "input_tokens",
            "output_tokens",
            "cache_write_tokens",
            "cache_read_tokens",
            "cost_usd",
            "cost_micro_usd",
        ]
        rows = [
            [
                workspace.name,
                month,
                line["model"],
                line["requests"],
                line["input_tokens"],
                line["output_tokens"],
                line["cache_write_tokens"],
                line["cache_read_tokens"],
                money.dollars(int(line["cost"] or 0)).replace("$", "").replace(",", ""),
                int(line["cost"] or 0),
            ]
            for line in lines
        ]
        name = f"{organization.slug}-{workspace.name}-{month}-statement.csv".replace(" ", "_")
        return _csv_response(name, header, rows)
    context = _ctx(
        request,
        "statements",
        workspace=workspace,
        month=month,
        lines=lines,
        total=total,
        period=periods.period_label(start),
        printable=request.GET.get("print") == "1",
    )
    return render(request, "billing/statement.html", context)


# -- spending limit increase requests ---------------------------------------------------------


def _request_targets(request) -> list[tuple[str, str]]:
    """What a member may ask a higher cap for: their active keys, the workspaces they use."""
    membership = request.membership
    keys = ApiKey.objects.filter(
        organization_id=membership.organization_id,
        owner_id=membership.user_id,
        revoked_at__isnull=True,
    ).order_by("name")
    choices = [(f"key:{key.pk}", f"API key {key.name} ({key.display})") for key in keys]
    choices += [
        (f"workspace:{workspace.pk}", f"Workspace {workspace.name}")
        for workspace in workspaces_for(membership).order_by("name")
    ]
    return choices


@org_view("billing.view")
def increase_requests(request):
    """A member's requests for higher caps (Admins and Billing-only members: everyone's, to
    approve or deny), and the form to ask for one."""
    targets = _request_targets(request)
    form = IncreaseRequestForm(targets=targets)
    if request.method == "POST":
        form = IncreaseRequestForm(request.POST, targets=targets)
        if form.is_valid():
            kind, _, pk = form.cleaned_data["target"].partition(":")
            target = (
                {"api_key": get_object_or_404(ApiKey, pk=pk, organization=request.organization)}
                if kind == "key"
                else {
                    "workspace": get_object_or_404(
                        Workspace, pk=pk, organization=request.organization
                    )
                }
            )
            try:
                increase_requests_service.request_increase(
                    membership=request.membership,
                    cap_micros=form.cleaned_data["cap"],
                    reason=form.cleaned_data["reason"],
                    **target,
                )
            except ValidationError as error:
                add_service_errors(form, error)
            else:
                messages.success(
                    request,
                    "Request sent: the Admins and Billing members are emailed, and you will be "
                    "when they answer.",
                )
                return redirect("billing:increase_requests", request.organization.slug)
    rows = increase_requests_service.requests_visible_to(request.membership)[:100]
    context = _ctx(request, "requests", form=form, rows=rows, may_ask=bool(targets))
    return render(request, "billing/increase_requests.html", context)


def _increase_request(request, request_id: int):
    return get_object_or_404(
        increase_requests_service.requests_visible_to(request.membership), pk=request_id
    )


@org_view("billing.manage")
def increase_request_approve(request, request_id: int):
    increase = _increase_request(request, request_id)
    form = IncreaseApproveForm(initial={"cap": money.dollars_input(increase.requested_cap_micros)})
    if request.method == "POST":
        form = IncreaseApproveForm(request.POST)
        if form.is_valid():
            try:
                increase_requests_service.approve_increase(
                    request=increase, actor=request.user, cap_micros=form.cleaned_data["cap"]
                )
            except ValidationError as error:
                add_service_errors(form, error)
            else:
                messages.success(
                    request,
                    f"Approved: {increase.target_label} may now spend "
                    f"{money.dollars(form.cleaned_data['cap'])} a month.",
                )
                return redirect("billing:increase_requests", request.organization.slug)
    context = _ctx(
        request,
        "requests",
        increase=increase,
        form=form,
        limit=increase_requests_service.current_limit(increase),
    )
    return render(request, "billing/increase_request_approve.html", context)


@org_view("billing.manage")
def increase_request_deny(request, request_id: int):
    increase = _increase_request(request, request_id)
    if request.method == "POST":
        try:
            increase_requests_service.deny_increase(request=increase, actor=request.user)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, f"Denied; {increase.requested_by} is emailed.")
        return redirect("billing:increase_requests", request.organization.slug)
    return render(
        request, "billing/increase_request_deny.html", _ctx(request, "requests", increase=increase)
    )
