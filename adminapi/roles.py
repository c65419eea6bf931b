"""Anthropic's organization roles and ours: `admin` ↔ Admin, `billing` ↔ Billing-only,
`developer` ↔ Member. The others Anthropic has (`user`, `claude_code_user`, `managed`, …) name
no role of this console and are refused with a message saying which roles it has."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema

from members.models import Role

TO_OURS = {"admin": Role.ADMIN, "developer": Role.MEMBER, "billing": Role.BILLING}
TO_API = {ours: api for api, ours in TO_OURS.items()}
ROLES_TEXT = "admin (Admin), developer (Member) or billing (Billing-only)"


def check_role(value: str) -> str:
    if value not in TO_OURS:
        raise ValueError(
            f"{value!r} is not a role of this console. Its roles are {ROLES_TEXT}; "
            "user, claude_code_user and managed have no equivalent here."
        )
    return value


ApiRole = Annotated[
    str,
    AfterValidator(check_role),
    WithJsonSchema({"type": "string", "enum": list(TO_OURS)}),
]
