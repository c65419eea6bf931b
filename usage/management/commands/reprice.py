from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_date

from orgs.models import Organization
from usage.services import money, reprice_usage


def _day(value: str):
    try:
        day = parse_date(value)
    except ValueError:
        day = None
    if day is None:
        raise CommandError(f"{value!r} is not a date (YYYY-MM-DD).")
    return day


class Command(BaseCommand):
    help = (
        "Price the gateway's usage of a past period again at the prices now on file (after a "
        "price was corrected) and correct the hourly and daily rollups that hold it, one "
        "transaction per organization. The gateway's spend counters (caps, credits) follow "
        "(billing listens). Days are each organization's own (its time zone), both ends "
        "included. Idempotent."
    )

    def add_arguments(self, parser):
        parser.add_argument("--org", help="Organization slug (default: every organization).")
        parser.add_argument("--from", dest="first", required=True, help="First day, YYYY-MM-DD.")
        parser.add_argument("--to", dest="last", required=True, help="Last day, YYYY-MM-DD.")

    def handle(self, *args, org, first, last, **options):
        first, last = _day(first), _day(last)
        if last < first:
            raise CommandError("--to is before --from.")
        organization = None
        if org:
            organization = Organization.objects.filter(slug=org).first()
            if organization is None:
                raise CommandError(f"No organization with the slug {org!r}.")
        results = reprice_usage(first=first, last=last, organization=organization)
        if not results:
            self.stdout.write("No gateway usage in that period.")
            return
        slugs = dict(
            Organization.objects.filter(pk__in=[r.organization_id for r in results]).values_list(
                "pk", "slug"
            )
        )
        for r in results:
            self.stdout.write(
                f"  {slugs.get(r.organization_id, r.organization_id)}: {r.events} requests, "
                f"{r.changed} repriced, cost {money(r.cost_before)} → {money(r.cost_after)}"
            )
        self.stdout.write(self.style.SUCCESS(f"Repriced {sum(r.changed for r in results)} events."))
        not_followed = [r for r in results if r.not_followed]
        if not_followed:
            # The rollups are right (committed); the gateway's counters still hold the old costs.
            raise CommandError(
                "The spend counters of the gateway were not corrected for "
                + ", ".join(
                    str(slugs.get(r.organization_id, r.organization_id)) for r in not_followed
                )
                + f" ({not_followed[0].not_followed[0]}). The usage and its rollups are repriced; "
                "the counters that caps and credits read keep the old costs until they are rebuilt "
                "(a new month, or Redis losing them)."
            )
