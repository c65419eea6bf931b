"""403, 404 and 500 pages in the console's style, never Django's debug or plain pages."""

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


def test_403_page_explains_the_role(client, world):
    client.force_login(world.billing.user)
    response = client.get(f"/o/{world.org.slug}/settings/")
    assert response.status_code == 403
    assert "Your role in this organization does not allow this page" in response.content.decode()


@pytest.mark.urls(__name__)
def test_500_page_is_the_consoles():
    client = Client(raise_request_exception=False)
    response = client.get("/boom/")
    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()
