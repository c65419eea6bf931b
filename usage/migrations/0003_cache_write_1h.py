"""1-hour cache writes: their own price (2 × input, anthropic.com/pricing) and token count.

Anthropic reports `usage.cache_creation.ephemeral_1h_input_tokens` (part of
`cache_creation_input_tokens`); until now every write was priced at the 5-minute rate.
"""

from decimal import Decimal

from django.db import migrations, models

ONE_HOUR_WRITE_FACTOR = Decimal(2)


def fill_1h_prices(apps, schema_editor):
    ModelPrice = apps.get_model("usage", "ModelPrice")
    for price in ModelPrice.objects.all():
        price.cache_write_1h_per_mtok = price.input_per_mtok * ONE_HOUR_WRITE_FACTOR
        price.save(update_fields=["cache_write_1h_per_mtok"])


class Migration(migrations.Migration):
    dependencies = [("usage", "0002_seed_model_prices")]

    operations = [
        migrations.AddField(
            model_name="modelprice",
            name="cache_write_1h_per_mtok",
            field=models.DecimalField(
                decimal_places=6,
                default=Decimal(0),
                help_text="1-hour cache writes (2 × input).",
                max_digits=12,
            ),
            preserve_default=False,
        ),
        migrations.RunPython(fill_1h_prices, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="modelprice",
            name="cache_write_per_mtok",
            field=models.DecimalField(
                decimal_places=6, help_text="5-minute cache writes (1.25 × input).", max_digits=12
            ),
        ),
        migrations.AddField(
            model_name="usageevent",
            name="cache_creation_1h_input_tokens",
            field=models.PositiveBigIntegerField(default=0),
        ),
    ]
