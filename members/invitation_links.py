"""The token in an invitation link.

The link carries `signing.dumps({"i": invitation id, "t": random token}, salt=...)`: the signature
lets a damaged or hand-edited link be told apart from one that is merely out of date, and the
random token (256 bits) is what proves the link came from the email. Only its SHA-256 is stored,
so the database never holds a working link.
"""

import hashlib
import hmac
import secrets

from django.core import signing

from .models import Invitation

SALT = "members.invitation"
# The invitation this browser opened a link of: {"id": pk, "token_hash": the link's token hash}.
# The raw token never goes into the session (sessions are stored in the database).
SESSION_KEY = "members_invitation"


class DamagedLink(Exception):
    """The link's signature does not match: it was cut short or edited."""


def new_token() -> tuple[str, str]:
    """A fresh random token and the hash to store for it."""
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def link_token(invitation_id: int, token: str) -> str:
    return signing.dumps({"i": invitation_id, "t": token}, salt=SALT)


def read_link_token(value: str) -> tuple[int, str]:
    """The invitation id and token hash a link names. Raises DamagedLink."""
    try:
        payload = signing.loads(value, salt=SALT)
        invitation_id, token = int(payload["i"]), str(payload["t"])
    except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:
        raise DamagedLink from exc
    return invitation_id, hash_token(token)


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def remember_in_session(request, invitation: Invitation, token_hash: str) -> None:
    request.session[SESSION_KEY] = {"id": invitation.pk, "token_hash": token_hash}


def forget_in_session(request) -> None:
    request.session.pop(SESSION_KEY, None)


def invitation_in_session(request) -> tuple[Invitation | None, str]:
    """The invitation whose link this browser opened, and the token hash the link carried."""
    remembered = request.session.get(SESSION_KEY)
    if not isinstance(remembered, dict):
        return None, ""
    try:
        invitation_id = int(remembered.get("id"))
    except (TypeError, ValueError):
        return None, ""
    invitation = (
        Invitation.objects.select_related("organization", "invited_by")
        .filter(pk=invitation_id)
        .first()
    )
    return invitation, str(remembered.get("token_hash", ""))
