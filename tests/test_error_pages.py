"""403, 404 and 500 pages in the console's style, never Django's debug or plain pages."""

import logging
import re

import pytest
from django.test import Client
from django.urls import path

from console.urls import urlpatterns as console_urlpatterns

pytestmark = pytest.mark.django_db


def broken_view(request):
    raise RuntimeError("boom")


urlpatterns = [*console_urlpatterns, path("boom/", broken_view)]


def test_404_page_is_the_consoles(client, world):
    client.force_login(world.member.user)
    response = client.get("/o/globex/")
    assert response.status_code == 404
    assert "Back to the console" in response.content.decode()


def test_403_page_keeps_the_shell_and_names_who_can_grant_access(client, world):
    client.force_login(world.billing.user)
    response = client.get(f"/o/{world.org.slug}/settings/")
    assert response.status_code == 403
    page = response.content.decode()
    assert "Your role in Acme Support, Billing-only, does not allow this page" in page
    assert 'data-testid="sidebar"' in page and "Acme Support" in page
    grant = re.search(r'data-testid="who-can-grant">(.*?)</ul>', page, re.S).group(1)
    assert "admin@example.com" in grant and "finance@example.com" not in grant
    # The sidebar is the Billing-only user's: no Settings entry to click into the same 403.
    sidebar = re.search(r'data-testid="sidebar">(.*?)</nav>', page, re.S).group(1)
    assert "Billing" in sidebar and "Settings" not in sidebar


def test_an_ordinary_403_is_one_info_line_without_a_traceback(client, world, caplog):
    client.force_login(world.billing.user)
    with caplog.at_level(logging.INFO, logger="django.request"):
        assert client.get(f"/o/{world.org.slug}/settings/").status_code == 403
    [record] = [r for r in caplog.records if r.name == "django.request"]
    assert record.levelname == "INFO" and record.exc_info is None and record.exc_text is None
    line = logging.Formatter("%(levelname)s %(name)s %(message)s").format(record)
    assert line == (
        f"INFO django.request Forbidden (Permission denied): /o/{world.org.slug}/settings/ "
        "(Your role does not allow this (settings.manage).)"
    )
    assert "\n" not in line


@pytest.mark.urls(__name__)
def test_other_errors_keep_their_traceback(caplog):
    client = Client(raise_request_exception=False)
    with caplog.at_level(logging.INFO, logger="django.request"):
        client.get("/boom/")
    [record] = [r for r in caplog.records if r.name == "django.request"]
    assert record.levelname == "ERROR" and record.exc_info is not None


@pytest.mark.urls(__name__)
def test_500_page_is_the_consoles():
    client = Client(raise_request_exception=False)
    response = client.get("/boom/")
    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()
