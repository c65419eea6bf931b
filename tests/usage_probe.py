"""A test-only app for Celery workers started by the usage tests (settings module
`tests.settings_usage_probe`): it listens to `usage_ingested`, which ingestion sends after its
commit and before it acknowledges the stream entries, and

- appends "<pid> <events>" to the file `USAGE_PROBE_FILE` names (which worker stored what),
- SIGKILLs its own process at the first batch if `USAGE_KILL_FLAG` names a file that does not
  exist yet (it creates it): a worker killed after its insert and before its XACK.
"""

import os
import signal

from django.apps import AppConfig


def _on_ingested(sender, spans, **kwargs) -> None:
    probe = os.environ.get("USAGE_PROBE_FILE")
    if probe:
        with open(probe, "a") as out:
            out.write(f"{os.getpid()} {sum(span.events for span in spans)}\n")
    flag = os.environ.get("USAGE_KILL_FLAG")
    if flag and not os.path.exists(flag):
        open(flag, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)


class UsageProbe(AppConfig):
    name = "tests"
    label = "usage_probe"

    def ready(self) -> None:
        from usage.signals import usage_ingested

        usage_ingested.connect(_on_ingested, dispatch_uid="usage-probe")
