"""The confirm-then-act shape of destructive views: GET shows a confirmation page, POST runs the
service and reports its outcome as a flash message (a refusal too), then goes back to the list.
`success` is the message, or a function of what the service returned that words it."""

from collections.abc import Callable

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render


def confirm_then_run(
    request,
    *,
    run: Callable[[], object],
    success: str | Callable[[object], str],
    done_url: str,
    template: str,
    context: dict,
):
    if request.method != "POST":
        return render(request, template, context)
    try:
        outcome = run()
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, success(outcome) if callable(success) else success)
    return redirect(done_url)
