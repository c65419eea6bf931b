"""Claude API list prices (USD per million tokens), as published on anthropic.com/pricing.

Cache write is the 5-minute cache write price (1.25 × input); cache read is 0.1 × input. Rows are
keyed by model family prefix, so dated snapshots (claude-sonnet-4-5-20250929) match their family.
"""

from decimal import Decimal

from django.db import migrations

EFFECTIVE_FROM = "2024-01-01T00:00:00Z"

# model prefix: input, output, cache write (5 min), cache read
PRICES = {
    "claude-opus-4-5": ("5", "25", "6.25", "0.50"),
    "claude-opus-4-1": ("15", "75", "18.75", "1.50"),
    "claude-opus-4": ("15", "75", "18.75", "1.50"),
    "claude-sonnet-4-5": ("3", "15", "3.75", "0.30"),
    "claude-sonnet-4": ("3", "15", "3.75", "0.30"),
    "claude-3-7-sonnet": ("3", "15", "3.75", "0.30"),
    "claude-3-5-sonnet": ("3", "15", "3.75", "0.30"),
    "claude-haiku-4-5": ("1", "5", "1.25", "0.10"),
    "claude-3-5-haiku": ("0.80", "4", "1", "0.08"),
    "claude-3-opus": ("15", "75", "18.75", "1.50"),
    "claude-3-haiku": ("0.25", "1.25", "0.30", "0.03"),
}


def seed(apps, schema_editor):
    ModelPrice = apps.get_model("usage", "ModelPrice")
    for model, (inp, out, write, read) in PRICES.items():
        ModelPrice.objects.get_or_create(
            model=model,
            effective_from=EFFECTIVE_FROM,
            defaults={
                "input_per_mtok": Decimal(inp),
                "output_per_mtok": Decimal(out),
                "cache_write_per_mtok": Decimal(write),
                "cache_read_per_mtok": Decimal(read),
            },
        )


def unseed(apps, schema_editor):
    apps.get_model("usage", "ModelPrice").objects.filter(
        model__in=list(PRICES), effective_from=EFFECTIVE_FROM
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("usage", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
