from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        # Usage never imports billing: it announces each ingested batch, and billing listens
        # (alerts, auto-recharge).
        try:
            from usage.signals import usage_ingested
        except ImportError:  # usage without its batch signal (older code): the beat task covers
            return
        from .alerts import on_usage_ingested

        usage_ingested.connect(on_usage_ingested, dispatch_uid="billing.alerts")
