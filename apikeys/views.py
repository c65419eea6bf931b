"""API key pages. The plaintext key only ever appears in the body of the POST response that
created it (create, rotate), which is never cached and never stored in the session."""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_variables

from members.access import org_object_view, org_view
from members.confirm import confirm_then_run
from members.forms import add_service_errors
from members.listing import OrgTableView
from members.reauth import sensitive_action

from . import selectors, services
from .filters import AdminKeyFilter, ApiKeyFilter
from .forms import AdminKeyCreateForm, KeyCreateForm, KeyRenameForm, KeyRotateForm
from .models import AdminKey, ApiKey
from .tables import AdminKeyTable, ApiKeyTable


class ApiKeyListView(OrgTableView):
    capability = "apikeys.view"
    table_class = ApiKeyTable
    filterset_class = ApiKeyFilter
    template_name = "apikeys/key_list.html"
    export_name = "api-keys"

    def get_queryset(self):
        return selectors.keys_for_list(self.membership)

    def get_context_data(self, **kwargs):
        # The empty list's SDK snippet points at the console's public address.
        return super().get_context_data(
            nav="apikeys", console_base_url=settings.CONSOLE_BASE_URL, **kwargs
        )


def _visible_key(request, key_id: int) -> ApiKey:
    """A key of the organization the member sees (Admins every one, Members their own)."""
    return get_object_or_404(
        selectors.keys_visible_to(request.membership).select_related("workspace", "owner"),
        pk=key_id,
    )


def _show_once(request, issued, *, rotated_from: ApiKey | None = None):
    return render(
        request,
        "apikeys/key_created.html",
        {
            "issued": issued,
            "rotated_from": rotated_from,
            "nav": "apikeys",
            "console_base_url": settings.CONSOLE_BASE_URL,
        },
    )


def _shown_already(request, key: ApiKey, *, rotated_from: ApiKey | None = None):
    """The answer to a form submitted again (a reload of the page that showed a new key):
    nothing is minted, and the key is not shown again."""
    return render(
        request,
        "apikeys/key_shown_already.html",
        {"key": key, "rotated_from": rotated_from, "nav": "apikeys"},
        status=409,
    )


@never_cache
@sensitive_variables()  # error reports hide every local below: the key passes through many
@org_view("apikeys.create")
def key_create(request):
    if request.method == "POST":
        # Checked before the form: what the form would say now (a duplicate name, a workspace
        # archived since) is not news to someone who reloads the page that showed their key.
        made = selectors.key_made_by_form(request.membership, request.POST.get("form_token"))
        if made is not None:
            return _shown_already(request, made)
    form = KeyCreateForm(request.POST or None, membership=request.membership)
    if request.method == "POST" and form.is_valid():
        try:
            issued = services.create_api_key(
                membership=request.membership,
                workspace=form.cleaned_data["workspace"],
                name=form.cleaned_data["name"],
                expires_on=form.cleaned_data["expires_on"],
                actor=request.user,
                form_token=form.cleaned_data["form_token"],
            )
        except services.KeyAlreadyCreated as already:
            return _shown_already(request, already.key)
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            return _show_once(request, issued)
    return render(request, "apikeys/key_form.html", {"form": form, "nav": "apikeys", "new": True})


@org_object_view("apikeys.manage", find=_visible_key)
def key_rename(request, key: ApiKey):
    form = KeyRenameForm(
        request.POST or None, initial={"name": key.name}, key=key, membership=request.membership
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.rename_api_key(key=key, name=form.cleaned_data["name"], actor=request.user)
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, "Key renamed.")
            return redirect("apikeys:list", request.organization.slug)
    return render(request, "apikeys/key_form.html", {"form": form, "key": key, "nav": "apikeys"})


@org_object_view("apikeys.manage", find=_visible_key)
def key_revoke(request, key: ApiKey):
    return confirm_then_run(
        request,
        run=lambda: services.revoke_api_key(key=key, actor=request.user),
        success=f"{key.name} is revoked: it stops working now.",
        done_url=reverse("apikeys:list", args=[request.organization.slug]),
        template="apikeys/key_revoke.html",
        context={"key": key, "nav": "apikeys"},
    )


@never_cache
@sensitive_variables()  # error reports hide every local below: the key passes through many
@org_object_view("apikeys.manage", find=_visible_key)
def key_rotate(request, key: ApiKey):
    if request.method == "POST" and key.replaced_by_id is not None:
        # Rotated already: most likely this very form, resubmitted by a reload.
        return _shown_already(request, key.replaced_by, rotated_from=key)
    if not key.is_rotatable:
        messages.error(request, f"{key.name} cannot be rotated: only active keys can.")
        return redirect("apikeys:list", request.organization.slug)
    form = KeyRotateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            issued = services.rotate_api_key(
                key=key,
                overlap=services.ROTATION_OVERLAPS[form.cleaned_data["overlap"]],
                actor=request.user,
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            key.refresh_from_db()
            return _show_once(request, issued, rotated_from=key)
    return render(request, "apikeys/key_rotate.html", {"form": form, "key": key, "nav": "apikeys"})


# -- admin keys: the Admin API's credentials, on their own tab ------------------------------


class AdminKeyListView(OrgTableView):
    capability = "adminkeys.view"
    table_class = AdminKeyTable
    filterset_class = AdminKeyFilter
    template_name = "apikeys/admin_key_list.html"
    export_name = "admin-keys"

    def get_queryset(self):
        return selectors.admin_keys_for_list(self.membership)

    def get_context_data(self, **kwargs):
        return super().get_context_data(nav="apikeys", tab="admin", **kwargs)


@never_cache
@sensitive_variables()  # the new key passes through the locals below
@org_view("adminkeys.create")
@sensitive_action
def admin_key_create(request):
    form = AdminKeyCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            issued = services.create_admin_key(
                membership=request.membership, name=form.cleaned_data["name"], actor=request.user
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            return render(
                request,
                "apikeys/admin_key_created.html",
                {"issued": issued, "nav": "apikeys", "tab": "admin"},
            )
    return render(
        request, "apikeys/admin_key_form.html", {"form": form, "nav": "apikeys", "tab": "admin"}
    )


@org_view("adminkeys.manage")
def admin_key_revoke(request, admin_key_id: int):
    key = get_object_or_404(
        AdminKey.objects.filter(organization=request.organization).select_related("owner"),
        pk=admin_key_id,
    )
    return confirm_then_run(
        request,
        run=lambda: services.revoke_admin_key(key=key, actor=request.user),
        success=f"{key.name} is revoked: the Admin API refuses it from now on.",
        done_url=reverse("apikeys:admin_keys", args=[request.organization.slug]),
        template="apikeys/admin_key_revoke.html",
        context={"key": key, "nav": "apikeys", "tab": "admin"},
    )
