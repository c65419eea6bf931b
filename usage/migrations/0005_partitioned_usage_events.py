"""Raw usage events: identified by (request_id, created_at), monthly partitions on PostgreSQL,
server-tool counts and their cost, the fallback-price flag.

Django cannot change a table's primary key to a composite one in place (nor create a
partitioned table), so the table is rebuilt: its rows are set aside, the table is recreated
(partitioned by month of created_at on PostgreSQL: usage/partitions.py), the partitions their
months need are created and the rows copied back. See docs/decisions/0006.
"""

from django.db import migrations, models

from usage.partitions import CreatePartitionedModel

OLD_COLUMNS = (
    "request_id, upstream_request_id, created_at, organization_id, workspace_id, api_key_id, "
    "endpoint, model, stream, status, error_type, input_tokens, output_tokens, "
    "cache_creation_input_tokens, cache_creation_1h_input_tokens, cache_read_input_tokens, "
    "service_tier, cost_micros, latency_ms"
)
NEW_COLUMNS = (
    "web_search_requests, web_fetch_requests, code_execution_seconds, server_tool_cost_micros, "
    "fallback_priced"
)


def set_aside(apps, schema_editor):
    schema_editor.execute(
        f"CREATE TABLE usage_event_before_0005 AS SELECT {OLD_COLUMNS} FROM usage_usageevent"
    )


def copy_back(apps, schema_editor):
    from usage import partitions

    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                "SELECT DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC')::date "
                "FROM usage_event_before_0005"
            )
            for (month,) in sorted(cursor.fetchall()):
                partitions._create(cursor, month)
        partitions.forget_known()
    schema_editor.execute(
        f"INSERT INTO usage_usageevent ({OLD_COLUMNS}, {NEW_COLUMNS}) "
        f"SELECT {OLD_COLUMNS}, 0, 0, 0, 0, false FROM usage_event_before_0005"
    )
    schema_editor.execute("DROP TABLE usage_event_before_0005")


def create_empty_table_back(apps, schema_editor):
    schema_editor.execute(
        f"CREATE TABLE usage_event_before_0005 AS SELECT {OLD_COLUMNS} FROM usage_usageevent"
    )


def restore_rows(apps, schema_editor):
    schema_editor.execute(
        f"INSERT INTO usage_usageevent ({OLD_COLUMNS}) SELECT {OLD_COLUMNS} "
        "FROM usage_event_before_0005"
    )
    schema_editor.execute("DROP TABLE usage_event_before_0005")


class Migration(migrations.Migration):
    dependencies = [("usage", "0004_usage_rollups")]

    operations = [
        migrations.RunPython(set_aside, restore_rows),
        migrations.DeleteModel(name="UsageEvent"),
        CreatePartitionedModel(
            name="UsageEvent",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "request_id",
                        "created_at",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("request_id", models.CharField(max_length=64)),
                ("upstream_request_id", models.CharField(blank=True, default="", max_length=128)),
                ("created_at", models.DateTimeField()),
                ("organization_id", models.BigIntegerField()),
                ("workspace_id", models.BigIntegerField(null=True)),
                ("api_key_id", models.BigIntegerField(null=True)),
                ("endpoint", models.CharField(default="messages", max_length=32)),
                ("model", models.CharField(blank=True, default="", max_length=128)),
                ("stream", models.BooleanField(default=False)),
                ("status", models.PositiveSmallIntegerField()),
                ("error_type", models.CharField(blank=True, default="", max_length=64)),
                ("input_tokens", models.PositiveBigIntegerField(default=0)),
                ("output_tokens", models.PositiveBigIntegerField(default=0)),
                ("cache_creation_input_tokens", models.PositiveBigIntegerField(default=0)),
                ("cache_creation_1h_input_tokens", models.PositiveBigIntegerField(default=0)),
                ("cache_read_input_tokens", models.PositiveBigIntegerField(default=0)),
                ("web_search_requests", models.PositiveBigIntegerField(default=0)),
                ("web_fetch_requests", models.PositiveBigIntegerField(default=0)),
                ("code_execution_seconds", models.PositiveBigIntegerField(default=0)),
                ("service_tier", models.CharField(blank=True, default="", max_length=32)),
                (
                    "cost_micros",
                    models.BigIntegerField(default=0, help_text="Integer micro-dollars, all in."),
                ),
                (
                    "server_tool_cost_micros",
                    models.BigIntegerField(
                        default=0,
                        help_text="Of cost_micros, what server tools (web search, ...) cost.",
                    ),
                ),
                (
                    "fallback_priced",
                    models.BooleanField(
                        default=False,
                        help_text="The model had no price row: priced at the fallback price.",
                    ),
                ),
                ("latency_ms", models.FloatField(default=0)),
            ],
            options={
                "indexes": [
                    models.Index(
                        fields=["organization_id", "created_at"], name="usage_event_org_time"
                    )
                ],
            },
            partition_key="created_at",
        ),
        migrations.RunPython(copy_back, create_empty_table_back),
    ]
