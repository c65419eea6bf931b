from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        # Usage never imports billing: it announces each ingested batch, and billing listens
        # (alerts, auto-recharge); and each repricing, which the spend counters follow.
        try:
            from usage.signals import usage_ingested, usage_repriced
        except ImportError:  # usage without its batch signal (older code): the beat task covers
            return
        from .alerts import on_usage_ingested
        from .spend import on_usage_repriced

        usage_ingested.connect(on_usage_ingested, dispatch_uid="billing.alerts")
        usage_repriced.connect(on_usage_repriced, dispatch_uid="billing.spend_counters")
