from django.urls import path

from . import views

app_name = "members"

urlpatterns = [
    path("", views.MemberListView.as_view(), name="list"),
    path("invitations/", views.InvitationListView.as_view(), name="invitations"),
    path("invite/", views.invite, name="invite"),
    path(
        "invitations/<int:invitation_id>/resend/",
        views.invitation_resend,
        name="invitation_resend",
    ),
    path(
        "invitations/<int:invitation_id>/revoke/",
        views.invitation_revoke,
        name="invitation_revoke",
    ),
    path("<int:member_id>/role/", views.member_role, name="role"),
    path("<int:member_id>/workspaces/", views.member_workspaces, name="workspaces"),
    path("<int:member_id>/remove/", views.member_remove, name="remove"),
    path("leave/", views.leave, name="leave"),
]
