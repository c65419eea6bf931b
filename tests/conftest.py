"""Shared fixtures: one organization with a user of each role, and an outsider who is Admin of
another organization."""

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.cache import cache
from django.db import connection
from django.db.backends.postgresql.operations import DatabaseOperations as PostgresOperations

from members.models import Membership, Role, WorkspaceMembership
from orgs.models import Organization, Workspace

from .factories import MembershipFactory, OrganizationFactory, UserFactory, WorkspaceFactory


@pytest.fixture(scope="session")
def django_db_modify_db_settings():
    # One test database per run, so several runs on one machine (developers, CI) never collide.
    # pytest-django drops it when the run ends.
    from django.conf import settings

    database = settings.DATABASES["default"]
    database.setdefault("TEST", {})["NAME"] = f"test_console_{os.getpid()}"
    # Tests empty tables between tests with TRUNCATE, which the audit log refuses elsewhere
    # (audit/migrations/0005): this session-level setting lets the suite's connections do it.
    options = database.setdefault("OPTIONS", {})
    options["options"] = (
        options.get("options", "") + " -c console.audit_allow_truncate=on"
    ).strip()


def _flush_by_delete(self, style, tables, *, reset_sequences=False, allow_cascade=False):
    """Transactional tests empty every table after each test (Django's flush). TRUNCATE gives
    each of ~60 tables new files: about 0.5 s a flush, minutes over the suite; DELETE of the few
    rows a test leaves takes milliseconds. Foreign keys are deferrable (Django's), so the order
    does not matter; the audit log lets a DELETE through only while archiving is on.
    (A Django upgrade that changes the flush's SQL or its callers will show here first.)"""
    if reset_sequences or not tables:
        return _truncate(self, style, tables, reset_sequences=reset_sequences,
                         allow_cascade=allow_cascade)  # fmt: skip
    quote = self.quote_name
    return [
        "SET CONSTRAINTS ALL DEFERRED",
        "SET LOCAL console.audit_archiving = on",
        *(f"DELETE FROM {quote(table)}" for table in tables if table not in KEPT_BY_FLUSH),
    ]


# What post_migrate makes again after every flush (one INSERT per model and permission): kept,
# so it only reads them. No test changes them.
KEPT_BY_FLUSH = {"django_content_type", "auth_permission"}


_truncate = PostgresOperations.sql_flush
PostgresOperations.sql_flush = _flush_by_delete

TESTS_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    """The audit coverage test judges the whole suite: it runs last, and only when the whole
    suite runs (a subset cannot tell which actions other tests would have produced)."""
    from .audit_coverage import COVERAGE_TEST

    coverage = [item for item in items if item.name == COVERAGE_TEST]
    if not coverage:
        return
    whole_suite = (
        {Path(arg).resolve() for arg in config.args} == {TESTS_DIR}
        and not config.option.keyword
        and not config.option.markexpr
        and not config.getoption("deselect", None)
        and not config.getoption("lf", False)
    )
    items[:] = [item for item in items if item.name != COVERAGE_TEST]
    if whole_suite:
        items.extend(coverage)
    else:
        config.hook.pytest_deselected(items=coverage)


@pytest.fixture(scope="session", autouse=True)
def _test_database_dropped_at_the_end(django_db_setup, django_db_blocker):
    """Threads the tests started (the gateway's, a live server's) may still hold a connection to
    the test database when the run ends; pytest-django then cannot drop it ("being accessed by
    other users") and every run would leave one behind. Their sessions end first."""
    yield
    database = connection.settings_dict
    if database["NAME"] != database.get("TEST", {}).get("NAME"):
        return  # no test of this run asked for the database: none was made
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(scope="session", autouse=True)
def _audit_actions_produced():
    from django.db.models.signals import post_save

    from audit.models import AuditEvent

    from .audit_coverage import remember

    post_save.connect(remember, sender=AuditEvent, dispatch_uid="tests.audit_coverage")
    yield
    post_save.disconnect(sender=AuditEvent, dispatch_uid="tests.audit_coverage")


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Real hashing costs ~0.3 s a user; the tests are about access, not key stretching.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _no_reauthentication(settings):
    # Sessions made by force_login never typed a password: asking for it again would stop every
    # test of an Admin key, a role or an upstream. tests/test_security.py turns it back on.
    settings.CONSOLE_REAUTHENTICATION = False


@pytest.fixture(autouse=True)
def _local_upstreams_allowed(settings):
    # The simulator and the tests' fake upstreams listen on 127.0.0.1; *.example are stored only.
    settings.GATEWAY_UPSTREAM_HOSTS = [
        "api.anthropic.com", "127.0.0.1", "a.example", "b.example", "x.example",
    ]  # fmt: skip
    # Plain http only for local hosts: the simulator and the fake upstreams are.
    settings.GATEWAY_LOCAL_UPSTREAM_HOSTS = ["127.0.0.1"]


@pytest.fixture(autouse=True)
def _fresh_cache():
    # Rate limits and cached lookups live in Redis: one test's state must not leak into the next.
    cache.clear()
    yield


@pytest.fixture(scope="session", autouse=True)
def _suite_runs_on_postgresql(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        assert connection.vendor == "postgresql", (
            "The suite runs against PostgreSQL: run it with `make test` (DATABASE_URL)."
        )


@dataclass
class OrgWorld:
    org: Organization
    workspace: Workspace  # a non-default workspace of `org`
    admin: Membership
    member: Membership
    billing: Membership
    outsider: Membership  # Admin of `other_org`
    other_org: Organization
    other_workspace: Workspace

    def membership(self, role: str) -> Membership:
        return {"admin": self.admin, "member": self.member, "billing": self.billing}[role]


@pytest.fixture
def world(db) -> OrgWorld:
    org = OrganizationFactory(name="Acme Support", slug="acme-support")
    workspace = WorkspaceFactory(organization=org, name="Development")
    admin = MembershipFactory(
        organization=org, role=Role.ADMIN, user=UserFactory(email="admin@example.com")
    )
    member = MembershipFactory(
        organization=org, role=Role.MEMBER, user=UserFactory(email="dev@example.com")
    )
    billing = MembershipFactory(
        organization=org, role=Role.BILLING, user=UserFactory(email="finance@example.com")
    )
    WorkspaceMembership.objects.create(membership=member, workspace=workspace)
    other_org = OrganizationFactory(name="Globex", slug="globex")
    outsider = MembershipFactory(
        organization=other_org, role=Role.ADMIN, user=UserFactory(email="outsider@globex.test")
    )
    other_workspace = WorkspaceFactory(organization=other_org, name="Globex Dev")
    return OrgWorld(org, workspace, admin, member, billing, outsider, other_org, other_workspace)


@pytest.fixture
def client_for(client):
    """`client_for(membership_or_user)` returns the test client logged in as that user."""

    def login(who):
        user = getattr(who, "user", who)
        client.force_login(user)
        return client

    return login
