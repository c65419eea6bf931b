from django.core.management.base import BaseCommand
from django.db import transaction

from gateway import crypto
from gateway.models import UpstreamConfig
from gateway.routing import forget_routes


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored upstream API key with the first key of "
        "UPSTREAM_KEY_ENCRYPTION_KEYS (run after putting a new key first; then drop the old one)."
    )

    def handle(self, *args, **options):
        count = 0
        with transaction.atomic():
            for config in UpstreamConfig.objects.select_for_update().only("api_key_encrypted"):
                config.api_key_encrypted = crypto.rotate(config.api_key_encrypted)
                config.save(update_fields=["api_key_encrypted"])
                count += 1
        forget_routes()
        self.stdout.write(f"Re-encrypted {count} upstream API keys.")
