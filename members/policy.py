"""The role policy: every "may this member do X here?" in the console is answered by `can()`.

`ROLE_TABLE` mirrors the guide's role table row for row. Views and templates ask by capability
("apikeys.manage", "billing.view"), never by role name, so changing what a role may do is a change
to this table alone.

Levels, weakest first:
    NONE  no access
    OWN   act on one's own objects only (create, use, revoke own keys; see own usage)
    VIEW  read everything in the organization, change nothing
    FULL  read and change everything in the organization

Verbs:
    view      open the area at all                       (OWN and above)
    view_all  see every object in the organization      (VIEW and above)
    create    create objects that one then owns          (OWN, FULL)
    manage    change an object: FULL, or OWN when the object is one's own
"""

from enum import IntEnum

from django.conf import settings

from .models import Membership, Role


class Level(IntEnum):
    NONE = 0
    OWN = 1
    VIEW = 2
    FULL = 3


NONE, OWN, VIEW, FULL = Level.NONE, Level.OWN, Level.VIEW, Level.FULL

#                 Admin        Member       Billing-only
ROLE_TABLE: dict[str, dict[str, Level]] = {
    "apikeys":    {Role.ADMIN: FULL, Role.MEMBER: OWN,  Role.BILLING: NONE},
    # Admin keys act for the Admin API with the Admin role: Admins only (not in the guide).
    "adminkeys":  {Role.ADMIN: FULL, Role.MEMBER: NONE, Role.BILLING: NONE},
    "billing":    {Role.ADMIN: FULL, Role.MEMBER: VIEW, Role.BILLING: FULL},
    "members":    {Role.ADMIN: FULL, Role.MEMBER: NONE, Role.BILLING: NONE},
    "usage":      {Role.ADMIN: FULL, Role.MEMBER: OWN,  Role.BILLING: VIEW},
    "settings":   {Role.ADMIN: FULL, Role.MEMBER: NONE, Role.BILLING: NONE},
    "audit":      {Role.ADMIN: FULL, Role.MEMBER: NONE, Role.BILLING: NONE},
    "workspaces": {Role.ADMIN: FULL, Role.MEMBER: NONE, Role.BILLING: NONE},
    # Everyone in the organization sees its home page and may leave it.
    "org":        {Role.ADMIN: FULL, Role.MEMBER: OWN,  Role.BILLING: OWN},
}  # fmt: skip

VERBS = ("view", "view_all", "create", "manage")


def level(membership: Membership | None, area: str) -> Level:
    if membership is None:
        return NONE
    return ROLE_TABLE[area][membership.role]


def owner_id_of(obj) -> int | None:
    """The user who owns `obj`, for OWN checks: its `owner_id`, or else its `user_id`."""
    for attribute in ("owner_id", "user_id"):
        if hasattr(obj, attribute):
            return getattr(obj, attribute)
    return None


def can(membership: Membership | None, capability: str, obj=None) -> bool:
    area, _, verb = capability.partition(".")
    if area not in ROLE_TABLE or verb not in VERBS:
        raise ValueError(f"Unknown capability {capability!r}")
    granted = level(membership, area)
    if verb == "view":
        return granted >= OWN
    if verb == "view_all":
        return granted >= VIEW
    if verb == "create":
        return granted in (OWN, FULL)
    # manage
    if granted == FULL:
        return True
    return granted == OWN and obj is not None and owner_id_of(obj) == membership.user_id


def may_create_organizations(user) -> bool:
    """Not an organization's capability but the site's: anyone with open sign-up
    (CONSOLE_SIGNUP=open), only site operators (staff) when sign-up is by invitation."""
    return settings.CONSOLE_SIGNUP == "open" or bool(getattr(user, "is_staff", False))
