"""Monthly partitions of the raw usage events on PostgreSQL (declarative range partitioning on
`created_at`, UTC months). On SQLite (`make run`) the table is a plain table and these
functions do nothing.

    ensure_partitions([date(2026, 11, 1)])     # ingestion, before a batch: its months exist
    create_future_partitions(ahead=3)          # beat task: this month and the next three
    drop_expired_partitions()                  # beat task: raw retention, by DROP TABLE

A partition is named `usage_usageevent_pYYYY_MM` and holds [first of the month, first of the
next) in UTC. Raw retention is an organization setting (`Organization.usage_retention_months`)
while a partition holds every organization's events of its month, so (decision 0006):

- a partition is dropped once it is older than the *longest* retention any organization has
  (the common case, every organization at the default 13 months: whole partitions go, no
  row is deleted);
- an organization with a shorter retention than that has its own events deleted, by
  (organization, month), from the partitions between its horizon and the longest one, so no
  organization's raw events outlive its setting. Rollups (hourly, daily) are kept.

Months are counted back from the first day of the current UTC month: with 13, in November 2026
the events from October 2025 on are kept.
"""

from __future__ import annotations

import logging
import re
import threading
from datetime import UTC, date, datetime

from django.db import connection, migrations, transaction

logger = logging.getLogger(__name__)

TABLE = "usage_usageevent"
PARTITION = re.compile(rf"^{TABLE}_p(\d{{4}})_(\d{{2}})$")
ADVISORY_LOCK = 72_650_001  # serialises partition DDL between ingesting processes

_known: set[date] = set()  # months with a partition, as far as this process has seen
_known_lock = threading.Lock()


def month_start(value: datetime | date) -> date:
    return date(value.year, value.month, 1)


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"{TABLE}_p{month:%Y_%m}"


def is_partitioned() -> bool:
    return connection.vendor == "postgresql"


def existing_partitions() -> list[date]:
    """The months that have a partition, oldest first."""
    if not is_partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            [TABLE],
        )
        names = [row[0] for row in cursor.fetchall()]
    months = []
    for name in names:
        found = PARTITION.match(name)
        if found:
            months.append(date(int(found[1]), int(found[2]), 1))
    return sorted(months)


def _create(cursor, month: date) -> None:
    cursor.execute(
        f'CREATE TABLE IF NOT EXISTS "{partition_name(month)}" PARTITION OF "{TABLE}" '
        "FOR VALUES FROM (%s) TO (%s)",
        [
            datetime(month.year, month.month, 1, tzinfo=UTC),
            datetime(*add_months(month, 1).timetuple()[:3], tzinfo=UTC),
        ],
    )


def ensure_partitions(months) -> None:
    """Create the partitions of `months` (first days) that do not exist yet. Cheap when they
    do (a set lookup); creation takes an advisory lock so concurrent ingesters do not race."""
    if not is_partitioned():
        return
    missing = {month_start(m) for m in months} - _known
    if not missing:
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK])
        present = set(existing_partitions())
        for month in sorted(missing - present):
            _create(cursor, month)
            logger.info("Created usage event partition %s", partition_name(month))
    with _known_lock:
        _known.update(present | missing)


def create_future_partitions(ahead: int = 3, now: datetime | None = None) -> list[date]:
    """This month's partition and the next `ahead` months'. Returns the months ensured."""
    first = month_start(now or datetime.now(UTC))
    months = [add_months(first, n) for n in range(ahead + 1)]
    ensure_partitions(months)
    return months


def forget_known() -> None:
    """Forget what this process knows (a partition dropped by another process, tests)."""
    with _known_lock:
        _known.clear()


def retention_horizon(months: int, now: datetime | None = None) -> date:
    """The first month kept with a retention of `months`."""
    return add_months(month_start(now or datetime.now(UTC)), -months)


def drop_expired_partitions(now: datetime | None = None) -> dict:
    """Apply raw-event retention (see the module docstring). Returns what was done."""
    from orgs.models import Organization

    from .models import UsageEvent

    now = now or datetime.now(UTC)
    retention = dict(Organization.objects.values_list("pk", "usage_retention_months"))
    longest = max(retention.values(), default=13)
    global_horizon = retention_horizon(longest, now)
    dropped = []
    if is_partitioned():
        for month in existing_partitions():
            if add_months(month, 1) <= global_horizon:
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK])
                    cursor.execute(f'DROP TABLE IF EXISTS "{partition_name(month)}"')
                dropped.append(month)
                logger.info("Dropped usage event partition %s (retention)", partition_name(month))
        forget_known()
    else:  # SQLite: no partitions, the same horizon by rows
        UsageEvent.objects.filter(
            created_at__lt=datetime(*global_horizon.timetuple()[:3], tzinfo=UTC)
        ).delete()
    deleted = 0
    for organization_id, months in retention.items():
        if months >= longest:
            continue
        horizon = retention_horizon(months, now)
        # Only the months between this organization's horizon and the global one hold rows
        # of it that are too old: one bounded DELETE, pruned to those partitions.
        count, _ = UsageEvent.objects.filter(
            organization_id=organization_id,
            created_at__gte=datetime(*global_horizon.timetuple()[:3], tzinfo=UTC),
            created_at__lt=datetime(*horizon.timetuple()[:3], tzinfo=UTC),
        ).delete()
        deleted += count
    return {"dropped": dropped, "deleted_rows": deleted, "horizon": global_horizon}


class CreatePartitionedModel(migrations.CreateModel):
    """CreateModel that, on PostgreSQL, creates the table partitioned by range of
    `partition_key` (the model state is a plain CreateModel's). Elsewhere a plain table."""

    def __init__(self, *args, partition_key: str = "created_at", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.partition_key = partition_key

    def deconstruct(self):
        name, args, kwargs = super().deconstruct()
        kwargs["partition_key"] = self.partition_key
        return name, args, kwargs

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.name)
        if schema_editor.connection.vendor != "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        sql, params = schema_editor.table_sql(model)
        column = model._meta.get_field(self.partition_key).column
        schema_editor.execute(
            f"{sql} PARTITION BY RANGE ({schema_editor.quote_name(column)})", params or None
        )
        schema_editor.deferred_sql.extend(schema_editor._model_indexes_sql(model))
