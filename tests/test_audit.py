"""Audit core: registered actions, copied actor labels, request origin. Tamper evidence:
tests/test_audit_chain.py."""

import pytest

from audit.models import AuditEvent
from audit.services import record_event

pytestmark = pytest.mark.django_db


def test_unregistered_actions_are_refused(world):
    with pytest.raises(ValueError):
        record_event(action="org.exploded", organization=world.org)


def test_actor_label_and_request_origin_are_recorded(client, world):
    client.force_login(world.admin.user)
    client.post(
        f"/o/{world.org.slug}/workspaces/new/",
        {"name": "Staging"},
        REMOTE_ADDR="203.0.113.9",
        HTTP_USER_AGENT="pytest-agent",
    )
    event = AuditEvent.objects.get(action="workspace.created")
    assert (event.actor_label, event.ip_address, event.user_agent) == (
        "admin@example.com",
        "203.0.113.9",
        "pytest-agent",
    )
    assert event.target_label == "Staging" and event.after == {"name": "Staging"}
