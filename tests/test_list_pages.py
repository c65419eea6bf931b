"""Every list page, found from the URL resolver (each view built on members.listing's
OrgTableView): pagination within bounds, CSV the only export and safe in a spreadsheet, the
htmx swap of the table alone, and caches told the two answers apart. A new list page is covered
by these tests without anyone adding it here."""

import pytest
from django.urls import reverse

from members.listing import SpreadsheetSafeExport

from .console_urls import CONSOLE_VIEWS, list_pages

pytestmark = pytest.mark.django_db

LISTS = list_pages()
HTMX = {"HX-Request": "true", "HX-Target": "table-region"}


def test_the_list_pages_are_found():
    assert {"members:list", "members:invitations", "apikeys:list", "workspaces", "audit_log"} <= (
        set(LISTS)
    )


def list_url(world, name):
    return reverse(name, args=[world.org.slug])


@pytest.mark.parametrize("name", LISTS)
@pytest.mark.parametrize(("per_page", "shown"), [("-1", 1), ("0", 25), ("1000", 100), ("x", 25)])
def test_lists_keep_per_page_between_1_and_100(client_for, world, name, per_page, shown):
    response = client_for(world.admin).get(list_url(world, name), {"per_page": per_page})
    assert response.status_code == 200
    assert response.context["table"].paginator.per_page == shown


@pytest.mark.parametrize("name", LISTS)
@pytest.mark.parametrize("page", ["999999", "0", "-3", "x", "1e9", "99999999999999999999999"])
def test_a_page_number_out_of_range_or_not_a_number_is_no_error(client_for, world, name, page):
    response = client_for(world.admin).get(list_url(world, name), {"page": page})
    assert response.status_code in (200, 404), f"{name} ?page={page}"


@pytest.mark.parametrize("name", LISTS)
@pytest.mark.parametrize("export_format", ["xlsx", "xls", "ods", "yaml", "json", "tsv", "latex"])
def test_lists_export_csv_only(client_for, world, name, export_format):
    response = client_for(world.admin).get(list_url(world, name), {"_export": export_format})
    assert response.status_code == 400
    assert response.content.decode() == "This list exports as csv only."
    assert "Content-Disposition" not in response


@pytest.mark.parametrize("name", LISTS)
def test_lists_export_csv_through_the_spreadsheet_safe_exporter(client_for, world, name):
    _, callback = CONSOLE_VIEWS[name]
    assert issubclass(callback.view_class.export_class, SpreadsheetSafeExport)
    response = client_for(world.admin).get(list_url(world, name), {"_export": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert f'filename="{world.org.slug}-' in response["Content-Disposition"]


@pytest.mark.parametrize("name", LISTS)
def test_htmx_swaps_the_table_alone(client_for, world, name):
    response = client_for(world.admin).get(list_url(world, name), headers=HTMX)
    assert response.status_code == 200
    text = response.content.decode()
    assert text.lstrip().startswith('<div id="table-region"') and "<html" not in text


@pytest.mark.parametrize("name", LISTS)
def test_lists_vary_on_htmx_headers(client_for, world, name):
    client = client_for(world.admin)
    for headers in ({}, HTMX):
        vary = client.get(list_url(world, name), headers=headers)["Vary"]
        assert {"HX-Request", "HX-Target"} <= {v.strip() for v in vary.split(",")}
