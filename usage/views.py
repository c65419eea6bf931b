from django.shortcuts import render

from members.access import org_view
from members.policy import can


@org_view("usage.view")
def overview(request):
    scope = "organization" if can(request.membership, "usage.view_all") else "own"
    return render(request, "usage/overview.html", {"nav": "usage", "scope": scope})
