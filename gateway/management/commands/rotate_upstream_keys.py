from django.core.management.base import BaseCommand
from django.db import transaction

from gateway import crypto
from gateway.models import UpstreamConfig
from gateway.routing import forget_routes
from usage.models import AnthropicUsageSource


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored upstream API key (and usage import Admin API key) with the "
        "first key of "
        "UPSTREAM_KEY_ENCRYPTION_KEYS (run after putting a new key first; then drop the old one)."
    )

    def handle(self, *args, **options):
        count = 0
        with transaction.atomic():
            for config in UpstreamConfig.objects.select_for_update().only("api_key_encrypted"):
                config.api_key_encrypted = crypto.rotate(config.api_key_encrypted)
                config.save(update_fields=["api_key_encrypted"])
                count += 1
            imports = 0
            for source in AnthropicUsageSource.objects.select_for_update().only(
                "api_key_encrypted"
            ):
                source.api_key_encrypted = crypto.rotate(source.api_key_encrypted)
                source.save(update_fields=["api_key_encrypted"])
                imports += 1
        forget_routes()
        self.stdout.write(
            f"Re-encrypted {count} upstream API keys and {imports} Admin API keys of usage imports."
        )
