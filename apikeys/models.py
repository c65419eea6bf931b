from django.conf import settings
from django.db import models
from django.utils import timezone


class KeyStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    REVOKED = "revoked", "Revoked"
    EXPIRED = "expired", "Expired"


class ApiKey(models.Model):
    """A console API key. The key itself is never stored: only its peppered hash, plus the
    prefix and last 4 characters for people to recognise it by."""

    organization = models.ForeignKey(
        "orgs.Organization", on_delete=models.CASCADE, related_name="api_keys"
    )
    workspace = models.ForeignKey(
        "orgs.Workspace", on_delete=models.PROTECT, related_name="api_keys"
    )
    # Deleting a user revokes their keys first (receivers.py); the rows stay for history.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="api_keys",
    )
    name = models.CharField(max_length=100)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=16, editable=False)
    last4 = models.CharField(max_length=4, editable=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Who revoked it, shown on the key: the user, and their label copied (it outlives the user;
    # "system" or a command's name when no one in the console did it), and why, when not asked.
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
    )
    revoked_by_label = models.CharField(max_length=254, blank=True, editable=False)
    revoke_reason = models.CharField(max_length=100, blank=True, editable=False)
    # Set once the expiry has been recorded (audit event apikey.expired): the claim that makes
    # the daily task idempotent.
    expiry_recorded_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The key this one was rotated into.
    replaced_by = models.OneToOneField(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="replaces"
    )
    # The one-time token of the form that created the key: a browser resubmitting that form
    # (a reload of the "key created" page) finds this key instead of minting a second one.
    form_token = models.CharField(max_length=64, null=True, blank=True, unique=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "owner"], name="apikey_org_owner")]
        constraints = [
            models.CheckConstraint(condition=~models.Q(name=""), name="apikey_name_not_empty"),
            models.CheckConstraint(
                condition=models.Q(key_hash__regex=r"^[0-9a-f]{64}$"),
                name="apikey_hash_is_sha256_hex",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.display})"

    @property
    def display(self) -> str:
        return f"{self.prefix}…{self.last4}"

    def status_at(self, now) -> str:
        if self.revoked_at is not None:
            return KeyStatus.REVOKED
        if self.expires_at is not None and self.expires_at <= now:
            return KeyStatus.EXPIRED
        return KeyStatus.ACTIVE

    @property
    def status(self) -> str:
        return self.status_at(timezone.now())

    @property
    def is_active(self) -> bool:
        return self.status == KeyStatus.ACTIVE

    @property
    def is_rotatable(self) -> bool:
        """Active and not rotated already (a rotated key only waits for its overlap to end)."""
        return self.is_active and self.replaced_by_id is None


class KeyNotice(models.Model):
    """An email sent to a key's owner about the key. The unique constraint is the claim that
    makes each reason go out at most once per key."""

    class Reason(models.TextChoices):
        EXPIRING = "expiring", "Expires within 7 days"
        AGED = "aged", "90 days old"
        UNUSED = "unused", "Unused for 30 days"

    key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="notices")
    reason = models.CharField(max_length=16, choices=Reason.choices)
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["key", "reason"], name="one_notice_per_key_and_reason")
        ]

    def __str__(self) -> str:
        return f"{self.reason} notice for key {self.key_id}"


class AdminKey(models.Model):
    """A key for the Admin API (/v1/organizations/...): it acts with the Admin role of its
    owner, who must stay an Admin of the organization for it to work. Never accepted at
    /v1/messages. Stored like an API key: the peppered hash, prefix and last 4 only."""

    organization = models.ForeignKey(
        "orgs.Organization", on_delete=models.CASCADE, related_name="admin_keys"
    )
    # The Admin who created it. A member removed or no longer Admin has their admin keys
    # revoked (receivers.py); the rows stay for history.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="admin_keys"
    )
    name = models.CharField(max_length=100)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=16, editable=False)
    last4 = models.CharField(max_length=4, editable=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=~models.Q(name=""), name="adminkey_name_not_empty"),
            models.CheckConstraint(
                condition=models.Q(key_hash__regex=r"^[0-9a-f]{64}$"),
                name="adminkey_hash_is_sha256_hex",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.display})"

    @property
    def display(self) -> str:
        return f"{self.prefix}…{self.last4}"

    @property
    def status(self) -> str:
        return KeyStatus.REVOKED if self.revoked_at is not None else KeyStatus.ACTIVE

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
