"""The signed-in person's profile: who they are, and the emails they receive."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from members.selectors import memberships_of
from usage import preferences
from usage.forms import NotificationPreferenceForm


@login_required
def profile(request):
    user = request.user
    form = NotificationPreferenceForm(
        request.POST if request.method == "POST" else None,  # an unticked box posts nothing
        initial={"weekly_digest": preferences.weekly_digest_wanted(user)},
    )
    if request.method == "POST" and form.is_valid():
        changed = preferences.set_weekly_digest(
            user=user, weekly_digest=form.cleaned_data["weekly_digest"]
        )
        messages.success(request, "Email preferences saved." if changed else "Nothing changed.")
        return redirect("profile")
    context = {"form": form, "memberships": memberships_of(user)}
    return render(request, "console/profile.html", context)
