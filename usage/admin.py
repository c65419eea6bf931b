from django.contrib import admin

from . import services
from .models import ModelPrice


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    """Site operators keep the price table here (or with `manage.py load_prices FILE`). A row
    prices a model id, or every model its `model` prefixes, from `effective_from` on; costs
    already stored keep their value until `manage.py reprice` applies a correction. Changes are
    audited (site chain) and reach every gateway within a minute (usage/pricing.py)."""

    list_display = (
        "model",
        "effective_from",
        "input_per_mtok",
        "output_per_mtok",
        "cache_write_per_mtok",
        "cache_write_1h_per_mtok",
        "cache_read_per_mtok",
        "web_search_per_1k",
    )
    list_filter = ("effective_from",)
    search_fields = ("model",)
    date_hierarchy = "effective_from"
    ordering = ("model", "-effective_from")
    fieldsets = (
        (None, {"fields": ("model", "effective_from")}),
        (
            "Per million tokens (US dollars)",
            {
                "fields": (
                    "input_per_mtok",
                    "output_per_mtok",
                    "cache_write_per_mtok",
                    "cache_write_1h_per_mtok",
                    "cache_read_per_mtok",
                )
            },
        ),
        (
            "Server tools (US dollars)",
            {"fields": ("web_search_per_1k", "web_fetch_per_1k", "code_execution_per_hour")},
        ),
    )

    def save_model(self, request, obj, form, change):
        services.save_model_price(price=obj, actor=request.user)

    def delete_model(self, request, obj):
        services.delete_model_price(price=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for price in queryset:
            services.delete_model_price(price=price, actor=request.user)
