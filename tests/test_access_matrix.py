"""Every console URL × {anonymous, Admin, Member, Billing-only, outsider}.

URL patterns are enumerated from the resolver, not from a hand list: a new view without an
expectation here fails `test_every_console_url_has_an_expectation`, so every later view is
covered by construction. Expectations are written from the guide's role table, independently
of the policy module they check.
"""

import pytest

from .console_urls import CONSOLE_URLS, PARAM, THIRD_PARTY_MODULES, THIRD_PARTY_NAMESPACES

ADMIN, MEMBER, BILLING = "admin", "member", "billing"
EVERYONE = {ADMIN, MEMBER, BILLING}

# Org-scoped pages: the roles that may open them (GET). Others in the org get 403, the outsider
# 404, anonymous visitors the login page.
ORG_PAGES: dict[str, set[str]] = {
    "org_home": EVERYONE,
    "org_settings": {ADMIN},
    "workspaces": {ADMIN},
    "workspace_create": {ADMIN},
    "workspace_rename": {ADMIN},
    "workspace_archive": {ADMIN},
    "audit_log": {ADMIN},
    "audit_event": {ADMIN},
    "audit_export_chain": {ADMIN},
    "members:list": {ADMIN},
    "members:invitations": {ADMIN},
    "members:invite": {ADMIN},
    "members:invitation_resend": {ADMIN},
    "members:invitation_revoke": {ADMIN},
    "members:role": {ADMIN},
    "members:workspaces": {ADMIN},
    "members:remove": {ADMIN},
    "members:leave": EVERYONE,
    "apikeys:list": {ADMIN, MEMBER},
    "apikeys:create": {ADMIN, MEMBER},
    # A key owned by the Member: its owner and the Admins may manage it.
    "apikeys:rename": {ADMIN, MEMBER},
    "apikeys:revoke": {ADMIN, MEMBER},
    "apikeys:rotate": {ADMIN, MEMBER},
    "apikeys:admin_keys": {ADMIN},
    "apikeys:admin_key_create": {ADMIN},
    "apikeys:admin_key_revoke": {ADMIN},
    # Billing: everyone in the organization looks (a Member read-only); Admin and Billing-only
    # change things.
    "billing:overview": EVERYONE,
    "billing:limits": EVERYONE,
    "billing:limit_new": {ADMIN, BILLING},
    "billing:limit_edit": {ADMIN, BILLING},
    "billing:limit_remove": {ADMIN, BILLING},
    "billing:credits": EVERYONE,
    # A member asks for a higher cap on their key or workspace (a Member sees their own
    # requests); Admins and Billing-only members approve or deny.
    "billing:increase_requests": EVERYONE,
    "billing:increase_request_approve": {ADMIN, BILLING},
    "billing:increase_request_deny": {ADMIN, BILLING},
    "billing:receipt": EVERYONE,
    "billing:invoices": EVERYONE,
    "billing:invoice": EVERYONE,
    "billing:invoice_print": EVERYONE,
    "billing:invoice_csv": EVERYONE,
    "billing:invoice_pdf": EVERYONE,
    "billing:invoice_pay": {ADMIN, BILLING},
    "billing:invoice_void": {ADMIN, BILLING},
    "billing:payments": EVERYONE,
    "billing:payment_methods": EVERYONE,
    "billing:payment_method_add": {ADMIN, BILLING},
    "billing:payment_method_default": {ADMIN, BILLING},
    "billing:payment_method_remove": {ADMIN, BILLING},
    "billing:contact": {ADMIN, BILLING},
    "billing:statements": EVERYONE,
    "billing:statement": EVERYONE,
    "usage:overview": EVERYONE,
    "usage:import": {ADMIN},
    "usage:import_remove": {ADMIN},
    "gateway:upstream": {ADMIN},
    "gateway:workspace": {ADMIN},
    "gateway:override_remove": {ADMIN},
}
# Pages for any signed-in user, outside an organization.
ACCOUNT_PAGES = {"home", "org_create", "profile"}
# Pages anyone may open.
PUBLIC_PAGES = {"healthz"}
# Operations endpoints (console/health.py): /readyz answers anyone (200 or a 503 naming the
# failing check, never a login page); /metrics only the operator's scraper (token or a direct
# connection from METRICS_ALLOWED_NETWORKS: tests/gateway/test_health_metrics.py).
OPERATIONS_PAGES = {"readyz": {200, 503}, "metrics": {403}}
# The invitee's side of an invitation link, open to anyone signed in or not (the invitee is not a
# member yet; the link's signed token is the credential): the status for a damaged token (open)
# and for a browser with no invitation in progress (accept). The whole flow is in
# tests/test_members_invitations.py.
INVITATION_PAGES: dict[str, int] = {"invitations:open": 400, "invitations:accept": 200}
# Third-party URLs (THIRD_PARTY_MODULES, THIRD_PARTY_NAMESPACES in tests/console_urls.py) have
# their own access rules: allauth's sign-in pages, and the Django admin (staff only, signing in
# through allauth; see test_accounts).
assert THIRD_PARTY_MODULES and THIRD_PARTY_NAMESPACES


def test_every_console_url_has_an_expectation():
    known = (
        set(ORG_PAGES)
        | ACCOUNT_PAGES
        | PUBLIC_PAGES
        | set(INVITATION_PAGES)
        | set(OPERATIONS_PAGES)
    )
    missing = sorted(set(CONSOLE_URLS) - known)
    assert not missing, f"URLs without an access expectation in this module: {missing}"
    stale = sorted(known - set(CONSOLE_URLS))
    assert not stale, f"Expectations for URLs that no longer exist: {stale}"


def _path(route: str, values: dict) -> str:
    names = PARAM.findall(route)
    unknown = [n for n in names if n not in values]
    assert not unknown, f"No value for URL parameter(s) {unknown} in {route}: add one to _values()"
    return "/" + PARAM.sub(lambda m: str(values[m.group(1)]), route)


def _values(world, *, own_org: bool = True) -> dict:
    """Parameter values for URLs of `world.org`, or (own_org=False) the outsider's org slug with
    `world.org`'s objects: a tampered URL mixing two organizations."""
    return {
        "slug": world.org.slug if own_org else world.other_org.slug,
        "workspace_id": world.workspace.pk,
        "member_id": world.member.pk,
        "invitation_id": _invitation(world).pk,
        "key_id": _api_key(world).pk,
        "admin_key_id": _admin_key(world).pk,
        **_billing_objects(world),
        "event_id": _audit_event(world).pk,
    }


def _billing_objects(world) -> dict:
    """A workspace limit, an issued invoice, a recharge receipt and a card of `world.org`."""
    from billing.models import Charge, Invoice, PaymentMethod, SpendLimit

    limit, _ = SpendLimit.objects.get_or_create(
        organization=world.org, scope="workspace", workspace=world.workspace,
        defaults={"monthly_cap_micros": 10_000_000},
    )  # fmt: skip
    method, _ = PaymentMethod.objects.get_or_create(
        organization=world.org, kind="card",
        defaults={"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2099,
                  "holder_name": "A. Finance", "is_default": True},
    )  # fmt: skip
    invoice, _ = Invoice.objects.get_or_create(
        organization=world.org, period_start="2026-01-01",
        defaults={"period_end": "2026-02-01", "status": "open", "number": "ACME-2026-0001",
                  "total_cents": 1234},
    )  # fmt: skip
    charge, _ = Charge.objects.get_or_create(
        organization=world.org, receipt_number="ACME-R-2026-0001",
        defaults={"amount_micros": 5_000_000, "description": "Recharge", "status": "pending",
                  "provider": "builtin", "payment_method": method},
    )  # fmt: skip
    from billing.models import SpendLimitIncreaseRequest

    increase, _ = SpendLimitIncreaseRequest.objects.get_or_create(
        organization=world.org, scope="workspace", workspace=world.workspace,
        defaults={"requested_by": world.member.user, "requested_cap_micros": 20_000_000},
    )  # fmt: skip
    return {
        "request_id": increase.pk,
        "limit_id": limit.pk, "invoice_id": invoice.pk, "charge_id": charge.pk,
        "method_id": method.pk, "month": "2026-01",
    }  # fmt: skip


def _invitation(world):
    from members.models import Invitation

    invitation, _ = Invitation.objects.get_or_create(
        organization=world.org,
        email="invitee@example.com",
        defaults={"role": "member", "invited_by": world.admin.user, "token_hash": "0" * 64},
    )
    return invitation


def _audit_event(world):
    from audit.models import AuditEvent
    from audit.services import record_event

    event = AuditEvent.objects.filter(organization=world.org).first()
    return event or record_event(action="workspace.created", organization=world.org)


def _api_key(world):
    """An active key of `world.org` owned by the Member."""
    from apikeys.models import ApiKey
    from apikeys.services import create_api_key

    key = ApiKey.objects.filter(organization=world.org, owner=world.member.user).first()
    if key is None:
        key = create_api_key(
            membership=world.member, workspace=world.workspace, name="Matrix", actor=None
        ).key
    return key


def _admin_key(world):
    """An active admin key of `world.org`, owned by the Admin."""
    from apikeys.models import AdminKey
    from apikeys.services import create_admin_key

    key = AdminKey.objects.filter(organization=world.org).first()
    if key is None:
        key = create_admin_key(membership=world.admin, name="Matrix", actor=None).key
    return key


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(ORG_PAGES))
@pytest.mark.parametrize("who", ["anonymous", ADMIN, MEMBER, BILLING, "outsider"])
def test_org_page_access(client, world, name, who):
    path = _path(CONSOLE_URLS[name], _values(world))
    if who == "anonymous":
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
        return
    membership = world.outsider if who == "outsider" else world.membership(who)
    client.force_login(membership.user)
    response = client.get(path)
    if who == "outsider":
        expected = 404
    else:
        expected = 200 if who in ORG_PAGES[name] else 403
    assert response.status_code == expected, f"{who} GET {path}"


# -- POST: what the GETs above show refused must also be refused when it would change something.
# Every org URL gets a POST from everyone who may not open it, with a body that fills the
# console's forms (extra fields are ignored by the others); the answer must be the refusal,
# and every table must hold what it held before. As NetBox's view tests do per permission.
DENIED_POSTS = sorted(
    (name, who)
    for name, allowed in ORG_PAGES.items()
    for who in ["anonymous", "outsider", *sorted(EVERYONE - allowed)]
)
# Written by signing in, not by the request under test.
UNWATCHED_TABLES = {"django_session"}


def _post_body(world) -> dict:
    from apikeys.forms import new_form_token

    return {
        "name": "Posted by the access matrix",
        "email": "matrix@example.com",
        "role": "admin",
        "workspace": world.workspace.pk,
        "workspaces": [world.workspace.pk],
        "overlap": "now",
        "form_token": new_form_token(),
        "action": "save",
        "confirm": "1",
        "slug": "posted-by-the-matrix",
        "timezone": "UTC",
        "base_url": "https://api.anthropic.com",
        "api_key": "sk-ant-api03-matrix",
        "monthly_cap": "10",
        "amount": "10",
        "reason": "matrix",
    }


def database_fingerprint() -> dict[str, str]:
    """A hash of every row of every table, in one query."""
    from django.db import connection

    tables = sorted(set(connection.introspection.table_names()) - UNWATCHED_TABLES)
    quote = connection.ops.quote_name
    query = " UNION ALL ".join(
        f"SELECT %s, md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
        f"FROM {quote(table)} t"
        for table in tables
    )
    with connection.cursor() as cursor:
        cursor.execute(query, tables)
        return dict(cursor.fetchall())


def _changed(before: dict, after: dict) -> list[str]:
    return sorted(table for table in after if before.get(table) != after[table])


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "who"), DENIED_POSTS)
def test_a_refused_post_changes_nothing(client, world, name, who):
    path = _path(CONSOLE_URLS[name], _values(world))
    body = _post_body(world)
    if who != "anonymous":
        membership = world.outsider if who == "outsider" else world.membership(who)
        client.force_login(membership.user)
    before = database_fingerprint()
    response = client.post(path, body)
    if response.status_code == 405:  # a page that takes no POST from anyone: refused too
        assert "POST" not in response["Allow"]
    elif who == "anonymous":
        assert response.status_code == 302, f"anonymous POST {path}"
        assert response["Location"].startswith("/accounts/login/")
    elif who == "outsider":
        assert response.status_code == 404, f"outsider POST {path}"
    else:
        assert response.status_code in (403, 404), f"{who} POST {path}"
    assert _changed(before, database_fingerprint()) == [], f"{who} POST {path} wrote"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name", sorted(n for n in ORG_PAGES if len(PARAM.findall(CONSOLE_URLS[n])) > 1)
)
def test_posts_to_objects_of_another_org_through_ones_own_slug_change_nothing(client, world, name):
    client.force_login(world.outsider.user)
    path = _path(CONSOLE_URLS[name], _values(world, own_org=False))
    body = _post_body(world)
    before = database_fingerprint()
    assert client.post(path, body).status_code == 404
    assert _changed(before, database_fingerprint()) == [], f"outsider POST {path} wrote"


@pytest.mark.django_db
def test_the_fingerprint_sees_one_changed_row(world):
    """The checks above can fail: one changed value changes its table's hash."""
    before = database_fingerprint()
    world.workspace.name = "Development 2"
    world.workspace.save(update_fields=["name"])
    assert _changed(before, database_fingerprint()) == ["orgs_workspace"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name", sorted(n for n in ORG_PAGES if len(PARAM.findall(CONSOLE_URLS[n])) > 1)
)
def test_objects_of_another_org_are_not_found_through_ones_own_slug(client, world, name):
    """The outsider is Admin of their own org but asks for our objects under their slug: 404."""
    client.force_login(world.outsider.user)
    path = _path(CONSOLE_URLS[name], _values(world, own_org=False))
    assert client.get(path).status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(ACCOUNT_PAGES))
def test_account_pages_need_a_login(client, world, name):
    path = _path(CONSOLE_URLS[name], {})
    response = client.get(path)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    client.force_login(world.member.user)
    assert client.get(path, follow=True).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(PUBLIC_PAGES))
def test_public_pages_open_to_anyone(client, name):
    assert client.get(_path(CONSOLE_URLS[name], {})).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(OPERATIONS_PAGES))
@pytest.mark.parametrize("who", ["anonymous", "member"])
def test_operations_endpoints_from_outside(client, world, name, who):
    if who == "member":
        client.force_login(world.member.user)
    response = client.get(_path(CONSOLE_URLS[name], {}), REMOTE_ADDR="203.0.113.9")
    assert response.status_code in OPERATIONS_PAGES[name]


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(INVITATION_PAGES))
@pytest.mark.parametrize("who", ["anonymous", "outsider"])
def test_invitation_pages_open_to_anyone_without_a_login(client, world, name, who):
    if who == "outsider":
        client.force_login(world.outsider.user)
    response = client.get(_path(CONSOLE_URLS[name], {"token": "not-a-signed-token"}))
    assert response.status_code == INVITATION_PAGES[name], f"{who} GET {name}"


@pytest.mark.django_db
def test_unknown_org_slug_is_not_found_for_a_signed_in_user(client, world):
    client.force_login(world.admin.user)
    assert client.get("/o/no-such-org/").status_code == 404
