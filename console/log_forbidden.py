"""A refused page is not a crash. Django logs every PermissionDenied on `django.request` as a
WARNING with the exception's traceback, which reads like an error in the logs; a member opening
a page their role does not reach is ordinary. `OneLineForbidden` (on that logger, in settings)
turns such a record into one INFO line that says why, without the trace. Other errors keep
theirs."""

import logging

from django.core.exceptions import PermissionDenied


class OneLineForbidden(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc_info = record.exc_info
        if exc_info and isinstance(exc_info[1], PermissionDenied):
            reason = str(exc_info[1])
            record.msg = f"{record.getMessage()}{f' ({reason})' if reason else ''}"
            record.args = None
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True
