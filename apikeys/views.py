from django.shortcuts import render

from members.access import org_view


@org_view("apikeys.view")
def key_list(request):
    return render(request, "apikeys/key_list.html", {"nav": "apikeys"})
