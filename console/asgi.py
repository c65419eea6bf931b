"""ASGI entry point: uvicorn serves the console (Django) and the gateway here.

Paths under `/v1/` go to the gateway's lean ASGI app (gateway/app.py), which reuses the apps'
services without Django's request handler, except the Admin API's (`/v1/organizations...`,
`/v1/openapi.json`: adminapi/asgi.py, also lean); everything else goes to Django. Lifespan
events go to the gateway (Django's handler does not speak lifespan): it opens nothing eagerly,
and at shutdown closes its upstream connections and flushes queued usage events. Without a
Celery worker and beat (`WEB_RUNS_BACKGROUND_WORK`), each web process runs that work in threads
(console/background.py).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
django_application = get_asgi_application()

from django.conf import settings  # noqa: E402
from django.urls import get_resolver  # noqa: E402

from adminapi.asgi import application as admin_api_application  # noqa: E402
from console import log_redaction  # noqa: E402
from gateway.app import application as gateway_application  # noqa: E402  (needs Django set up)

ADMIN_API_PATHS = ("/v1/organizations", "/v1/openapi.json")

log_redaction.install()  # invitation tokens never reach the access log

# Every URL pattern and view loaded with the process, not by its first page (which would wait
# for those imports: seconds on a busy machine).
get_resolver().check()  # walks every pattern, importing its views

if settings.WEB_RUNS_BACKGROUND_WORK:  # `make run`: no Celery worker or beat
    from console import background

    background.start()


async def application(scope, receive, send):
    if scope["type"] == "http" and scope["path"].startswith("/v1/"):
        # The Admin API (/v1/organizations/..., /v1/openapi.json) is a lean app of its own
        # (adminapi/asgi.py, docs/decisions/0016); one prefix test for a gateway request.
        if scope["path"].startswith(ADMIN_API_PATHS):
            await admin_api_application(scope, receive, send)
        else:
            await gateway_application(scope, receive, send)
    elif scope["type"] == "lifespan":
        await gateway_application(scope, receive, send)
    else:
        await django_application(scope, receive, send)
