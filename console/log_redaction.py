"""Invitation links carry their token in the path (`/invitations/<token>/`, where the invitee's
browser must open them), so every log line that names a path is a place a working link could
leak: the server's access log (uvicorn) and Django's "Bad Request: /invitations/…" warnings.
`RedactInvitationTokens` rewrites such paths to `/invitations/[token]/` before they are written;
console/asgi.py puts it on uvicorn's access logger, settings on Django's log handler."""

import logging
import re

INVITATION_PATH = re.compile(r"/invitations/(?!accept/)[^/\s?#\"']+")
REDACTED = "/invitations/[token]"


def redact(text: str) -> str:
    return INVITATION_PATH.sub(REDACTED, text) if "/invitations/" in text else text


class RedactInvitationTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            # (client, method, path with query, HTTP version, status): its formatter reads them.
            if isinstance(args[2], str) and "/invitations/" in args[2]:
                record.args = (args[0], args[1], redact(args[2]), args[3], args[4])
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler
            return True
        if "/invitations/" in message:
            record.msg, record.args = redact(message), ()
        return True


def install() -> None:
    """Put the filter on uvicorn's access logger (it does not propagate to Django's handlers)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactInvitationTokens) for f in access.filters):
        access.addFilter(RedactInvitationTokens())
