import os

from celery import Celery

from usage.worker import UsageIngestion

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")

app = Celery("console")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Workers ingest the usage stream (a thread per worker process: usage/worker.py).
app.steps["worker"].add(UsageIngestion)
