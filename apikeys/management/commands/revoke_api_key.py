"""Revoke an API key from the command line, e.g. after a secret scanner found it in a leak:

manage.py revoke_api_key 42                          # by id (the console's URLs show it)
manage.py revoke_api_key 'csk_AbCd…wxyz' --org acme  # by what the console displays
echo "$LEAKED_KEY" | manage.py revoke_api_key --stdin  # by the full key, kept off argv
"""

import re
import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apikeys import selectors, services
from apikeys.keyformat import check_key_format, hash_key
from apikeys.models import ApiKey


class Command(BaseCommand):
    help = "Revoke an API key at once, by id, by displayed prefix…last4, or by the full key."

    def add_arguments(self, parser):
        parser.add_argument("key", nargs="?", help="Key id, or its display form csk_AbCd…wxyz.")
        parser.add_argument("--org", help="Only look in this organization (slug).")
        parser.add_argument(
            "--stdin", action="store_true", help="Read the full key from standard input."
        )

    def handle(self, *args, key, org, stdin, **options):
        if bool(key) == bool(stdin):
            raise CommandError("Give a key id or display form, or --stdin, exactly one.")
        keys = ApiKey.objects.select_related("organization")
        if org:
            keys = keys.filter(organization__slug=org)
        if stdin:
            raw = sys.stdin.readline().rstrip("\r\n")
            problem = check_key_format(raw)
            if problem:
                raise CommandError(f"That is not a console key: {problem}")
            matches = list(keys.filter(key_hash=hash_key(raw)))
        elif re.fullmatch(r"[0-9]{1,18}", key):  # not str.isdigit(): it accepts "²"
            matches = list(keys.filter(pk=int(key)))
        else:
            matches = list(
                selectors.key_matching_display(key)
                .select_related("organization")
                .filter(pk__in=keys.values("pk"))
            )
        if not matches:
            raise CommandError("No such API key.")
        if len(matches) > 1:
            ids = ", ".join(str(k.pk) for k in matches)
            raise CommandError(f"Several keys match ({ids}): give the id instead.")
        found = matches[0]
        try:
            services.revoke_api_key(key=found, actor=None, actor_label="manage.py revoke_api_key")
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(
            f"Revoked key {found.pk} {found.name!r} ({found.display}) in {found.organization.slug}."
        )
