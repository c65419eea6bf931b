"""ASGI entry point: uvicorn serves the console (Django) here.

The gateway's `/v1` routes will be dispatched to a lean ASGI app before Django's handler (see the
gateway issue); everything else goes to Django.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
application = get_asgi_application()
