"""The usage dashboard: filters in the URL, totals, a chart stacked by model, a breakdown by key,
model or workspace, the largest and the failed requests, the price table, and the CSV of exactly
what is filtered. Reads are in usage/selectors.py; who sees what is `UsageScope`'s."""

from django.http import HttpResponseBadRequest
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django_tables2 import RequestConfig

from members.access import org_view
from members.policy import can

from . import chart, export, selectors, spikes
from .forms import UsageFilterForm
from .tables import BreakdownTable

BREAKDOWN_PER_PAGE = 25
# htmx targets answered with a part of the page rather than all of it. "usage-live" is what
# the filters select (totals, chart, breakdown, requests), which refreshes itself while the
# period includes today (templates/usage/_live.html).
PARTIALS = {
    "usage-page": "usage/_page.html",
    "table-region": "usage/_breakdown.html",
    "usage-live": "usage/_live.html",
}
LIVE_REFRESH_SECONDS = 5  # the design's "real-time view": a request on the page within 5 s


@org_view("usage.view")
def overview(request):
    # The names of keys and workspaces, read once: the filters offer them, the rows are
    # labelled with them (the CSV reads its own, usage/export.py).
    names = None if request.GET.get("_export") else selectors.Names.of(request.organization)
    form = UsageFilterForm(request.GET, membership=request.membership, names=names)
    if request.GET.get("_export"):
        if request.GET["_export"] != "csv":
            return _bad_request("The usage exports as csv only.")
        if not form.is_valid():
            return _bad_request(
                "The filters are not valid: "
                + " ".join(str(e) for errors in form.errors.values() for e in errors)
            )
        return export.csv_response(
            form.scope(), form.choice("granularity", "day"), request.organization
        )

    target = request.htmx.target if request.htmx else None
    context = {
        "nav": "usage",
        "scope_label": "organization" if can(request.membership, "usage.view_all") else "own",
        # The guide's "usage is higher than expected": who may cap max_tokens per workspace.
        "may_set_ceilings": can(request.membership, "settings.manage"),
        "form": form,
        # Dicts with "level" (Bootstrap alert colour), "title" and "text"; shown by
        # templates/usage/_notices.html. Spikes (usage/spikes.py) are the first.
        "notices": [] if target == "usage-live" else spikes.notices_for(request.membership),
        "group": form.choice("group", "key"),
        "metric": form.choice("metric", "cost"),
        "largest_by": form.choice("largest", "cost"),
    }
    if form.is_valid():
        context.update(_results(request, form, context, names))
    template = PARTIALS.get(target)
    if template is None:
        context["prices"] = selectors.current_prices()
    response = render(request, template or "usage/overview.html", context)
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    return response


def _results(request, form, context, names: selectors.Names) -> dict:
    scope = form.scope()
    rows = selectors.breakdown(scope, context["group"], names)
    totals = selectors.totals_of(rows)  # the same rows summed: one query fewer
    table = BreakdownTable(rows, group=context["group"])
    # 25 rows a page: rendering rows is most of the page's CPU (bench_dashboard), and a page
    # of 50 keys is read by its largest anyway (sorted by cost).
    RequestConfig(request, paginate={"per_page": BREAKDOWN_PER_PAGE}).configure(table)
    results = {
        "scope": scope,
        "totals": totals,
        "table": table,
        "names": names,
        # A period that includes today refreshes itself (a past one cannot change).
        "live_every": LIVE_REFRESH_SECONDS if scope.end >= form.today else None,
    }
    target = request.htmx.target if request.htmx else None
    if target == "table-region":
        return results
    series = selectors.series(scope, context["metric"])
    results.update(
        chart=chart.build(series, context["metric"], scope.zone),
        largest=_labelled(selectors.largest_requests(scope, context["largest_by"]), names),
        failed=_labelled(selectors.failed_requests(scope), names),
        error_types=selectors.error_types(scope) if totals.errors else [],
    )
    return results


def _labelled(events: list[dict], names: selectors.Names) -> list[dict]:
    for event in events:
        event["key_name"] = names.key_name(event["api_key_id"])
        event["key_display"] = names.key_display(event["api_key_id"])
        event["cost"] = selectors.dollars_of(event["cost_micros"])
    return events


def _bad_request(text: str):
    return HttpResponseBadRequest(text, content_type="text/plain; charset=utf-8")
