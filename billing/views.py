from django.shortcuts import render

from members.access import org_view


@org_view("billing.view")
def overview(request):
    return render(request, "billing/overview.html", {"nav": "billing"})
