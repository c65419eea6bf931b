from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """One recorded change. Append-only: PostgreSQL refuses UPDATE and DELETE (see migrations).

    `prev_hash`/`hash` chain every event to the one before it, so `verify_audit_chain` detects an
    edited or removed row. Organization and actor are kept without foreign-key constraints so
    that the history outlives them; the actor's label is copied for the same reason.
    """

    created_at = models.DateTimeField(db_index=True)
    organization = models.ForeignKey(
        "orgs.Organization",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_label = models.CharField(max_length=254, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=254, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    prev_hash = models.CharField(max_length=64, blank=True)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["organization", "-id"], name="audit_org_recent")]

    def __str__(self) -> str:
        return (
            f"{self.action} by {self.actor_label or 'system'} at {self.created_at:%Y-%m-%d %H:%M}"
        )


class AuditArchive(models.Model):
    """Events of one chain moved out of the database into a file (`archive_audit_events`).

    `last_hash` is the anchor: the chain that stays in the database starts from it, and the
    archive file ends with it, so both halves verify on their own and join up."""

    organization = models.ForeignKey(
        "orgs.Organization",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    through_event_id = models.BigIntegerField(help_text="The last archived event's id.")
    through_created_at = models.DateTimeField()
    events = models.PositiveIntegerField()
    anchor = models.CharField(max_length=64, blank=True, help_text="The archive's first link.")
    last_hash = models.CharField(max_length=64)
    file_name = models.CharField(max_length=500)
    file_sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-through_event_id"]

    def __str__(self) -> str:
        return f"{self.events} events through {self.through_event_id} ({self.file_name})"
