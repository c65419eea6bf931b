from django.core.management.base import BaseCommand, CommandError

from usage.price_lists import PriceListError, read_price_list
from usage.services import load_prices


class Command(BaseCommand):
    help = (
        "Load a price list (CSV, or JSON by its .json extension) into the price table: each "
        "row is a model (id or family) × effective_from with its prices per million tokens "
        "(input, output, 5-minute and 1-hour cache writes, cache reads) and, optionally, per "
        "server-tool use. Validated first (every problem listed, nothing loaded unless all is "
        "valid), loaded in one transaction, idempotent. See usage/price_lists.py for the columns."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="Path of the price list (.csv or .json).")
        parser.add_argument(
            "--dry-run", action="store_true", help="Validate and report, change nothing."
        )

    def handle(self, *args, file, dry_run, **options):
        try:
            rows = read_price_list(file)
        except PriceListError as exc:
            raise CommandError(
                f"{file} was not loaded:\n" + "\n".join(f"  {p}" for p in exc.problems)
            ) from None
        if dry_run:
            self.stdout.write(f"{file}: {len(rows)} valid prices (dry run: nothing loaded).")
            return
        done = load_prices(rows=rows, file_name=str(file))
        for label in done.created:
            self.stdout.write(f"  added    {label}")
        for label in done.updated:
            self.stdout.write(f"  changed  {label}")
        self.stdout.write(
            self.style.SUCCESS(
                f"{file}: {len(done.created)} prices added, {len(done.updated)} changed, "
                f"{len(done.unchanged)} unchanged."
            )
        )
        if done.updated:
            self.stdout.write(
                "Costs already stored keep their value: run `manage.py reprice --from DATE "
                "--to DATE` to apply corrected prices to a past period."
            )
