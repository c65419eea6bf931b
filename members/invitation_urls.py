"""The invitee's side of an invitation: not scoped to an organization (they are not a member yet).
Mounted at /invitations/ by the project's urls."""

from django.urls import path

from . import views

app_name = "invitations"

urlpatterns = [
    # Before "<token>/": a token always contains ":", so it can never be "accept".
    path("accept/", views.invitation_accept, name="accept"),
    path("<str:token>/", views.invitation_open, name="open"),
]
