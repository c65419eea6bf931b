"""Every write to API keys: create, rename, revoke, rotate, expire, hygiene notices, last-used.

Each change to what a key may do is announced to every process's verification cache
(`verification.announce_key_change`), inside the transaction, published on commit.
The plaintext key exists only in `IssuedKey.plaintext`, returned once to the caller.
"""

import datetime as dt
import logging
import uuid
from dataclasses import dataclass, field

import redis
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from audit.services import actor_label_for, record_event
from core import emails, hotpath
from members.models import Membership, User
from members.policy import can
from members.selectors import workspaces_for
from orgs.models import Workspace

from . import selectors
from .keyformat import ADMIN_PREFIX, display_parts, generate_key, hash_key
from .models import AdminKey, ApiKey, KeyNotice, KeyStatus
from .verification import LAST_USED_KEY, announce_key_change

logger = logging.getLogger(__name__)

NAME_MAX_LENGTH = 100
# The overlaps offered when rotating: how long the old key keeps working.
ROTATION_OVERLAPS = {
    "now": dt.timedelta(0),
    "1h": dt.timedelta(hours=1),
    "24h": dt.timedelta(hours=24),
    "7d": dt.timedelta(days=7),
}
EXPIRY_WARNING = dt.timedelta(days=7)
ROTATE_AFTER = dt.timedelta(days=90)
UNUSED_AFTER = dt.timedelta(days=30)
ARCHIVED_WORKSPACE_MESSAGE = "This workspace is archived: it cannot get new keys."


class KeyAlreadyCreated(Exception):
    """The form that asks for a key was submitted again (a reload, a double click): its key
    exists already and its plaintext was shown once, to the first submission."""

    def __init__(self, key: "ApiKey"):
        super().__init__(f"{key.name} was created already by this form.")
        self.key = key


@dataclass(frozen=True)
class IssuedKey:
    """A new key and its plaintext, which exists nowhere else. Show it once, then drop it."""

    key: ApiKey
    plaintext: str = field(repr=False)


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the key a name, e.g. Development or Production."})
    if len(name) > NAME_MAX_LENGTH:
        raise ValidationError({"name": f"Use at most {NAME_MAX_LENGTH} characters."})
    return name


def expiry_from_date(expires_on: dt.date | None) -> dt.datetime | None:
    """A key set to expire on a date works through the end of that day (console time zone)."""
    if expires_on is None:
        return None
    if expires_on < timezone.localdate():
        raise ValidationError({"expires_on": "Choose today or a later date."})
    end_of_day = dt.datetime.combine(expires_on, dt.time.max)
    return timezone.make_aware(end_of_day, timezone.get_current_timezone())


def _check_workspace(membership: Membership, workspace: Workspace) -> Workspace:
    # Locked, so a concurrent archive cannot slip in between the check and the new key.
    workspace = Workspace.objects.select_for_update().get(pk=workspace.pk)
    if workspace.organization_id != membership.organization_id:
        raise ValidationError({"workspace": "Choose a workspace of this organization."})
    if workspace.is_archived:
        raise ValidationError({"workspace": ARCHIVED_WORKSPACE_MESSAGE})
    if not workspaces_for(membership).filter(pk=workspace.pk).exists():
        raise ValidationError({"workspace": "Choose a workspace you belong to."})
    return workspace


@sensitive_variables("plaintext")
def _mint(**fields) -> IssuedKey:
    plaintext = generate_key()
    prefix, last4 = display_parts(plaintext)
    key = ApiKey.objects.create(key_hash=hash_key(plaintext), prefix=prefix, last4=last4, **fields)
    # A process that was asked for this key before it existed cached "unknown".
    announce_key_change(key.key_hash)
    return IssuedKey(key=key, plaintext=plaintext)


def _key_summary(key: ApiKey) -> dict:
    """What audit rows say about a key: never the key, only what the console shows."""
    return {
        "name": key.name,
        "key": key.display,
        "workspace": key.workspace.name,
        "owner": key.owner.email if key.owner_id else "",
        "expires_at": key.expires_at,
    }


@transaction.atomic
def create_api_key(
    *,
    membership: Membership,
    workspace: Workspace,
    name: str,
    expires_on: dt.date | None = None,
    actor: User | None,
    actor_label: str | None = None,
    form_token: str | None = None,
) -> IssuedKey:
    """Create a key owned by `membership`'s user, in one of the workspaces they may use.

    `form_token` makes the request that asks for the key one-time: a second call with the
    same token, concurrent or later, raises `KeyAlreadyCreated` with the first call's key."""
    name = _clean_name(name)
    if not can(membership, "apikeys.create"):
        raise ValidationError(f"{membership.user.email}'s role cannot hold API keys.")
    _raise_if_created_by(form_token, membership)
    workspace = _check_workspace(membership, workspace)
    try:
        with transaction.atomic():  # a savepoint: a lost race leaves the transaction usable
            issued = _mint(
                organization_id=membership.organization_id,
                workspace=workspace,
                owner=membership.user,
                name=name,
                expires_at=expiry_from_date(expires_on),
                form_token=form_token or None,
            )
    except IntegrityError:
        # The unique token: a concurrent submission of the same form committed first.
        _raise_if_created_by(form_token, membership)
        raise
    record_event(
        action="apikey.created",
        organization=membership.organization,
        actor=actor,
        actor_label=actor_label,
        target=issued.key,
        after=_key_summary(issued.key),
    )
    return issued


def _raise_if_created_by(form_token: str | None, membership: Membership) -> None:
    existing = selectors.key_made_by_form(membership, form_token)
    if existing is not None:
        raise KeyAlreadyCreated(existing)


def _locked(key: ApiKey) -> ApiKey:
    return (
        ApiKey.objects.select_for_update(of=("self",))
        .select_related("organization", "workspace", "owner")
        .get(pk=key.pk)
    )


@transaction.atomic
def rename_api_key(*, key: ApiKey, name: str, actor: User | None) -> ApiKey:
    name = _clean_name(name)
    key = _locked(key)
    if key.name == name:
        return key
    old = key.name
    key.name = name
    key.save(update_fields=["name"])
    announce_key_change(key.key_hash)
    record_event(
        action="apikey.renamed",
        organization=key.organization,
        actor=actor,
        target=key,
        before={"name": old},
        after={"name": name},
    )
    return key


@transaction.atomic
def revoke_api_key(
    *,
    key: ApiKey,
    actor: User | None,
    actor_label: str | None = None,
    reason: str = "",
    email_owner: bool = True,
) -> ApiKey:
    """Refuse the key from now on, everywhere. The row stays, listed as revoked, with who
    revoked it and when. An owner whose key someone else revoked is emailed after the commit
    (`email_owner=False` when the caller sends one email for several keys)."""
    key = _locked(key)
    if key.revoked_at is not None:
        raise ValidationError(f"{key.name} was already revoked.")
    key.revoked_at = timezone.now()
    key.revoked_by = actor if actor is not None and actor.is_authenticated else None
    key.revoked_by_label = (actor_label if actor_label is not None else actor_label_for(actor))[
        :254
    ]
    key.revoke_reason = reason[:100]
    key.save(update_fields=["revoked_at", "revoked_by", "revoked_by_label", "revoke_reason"])
    announce_key_change(key.key_hash)
    if email_owner and _owner_is_told(key, actor):
        transaction.on_commit(lambda: _email_revoked_keys(key.owner, [key.pk]), robust=True)
    _record_revoked("apikey.revoked", key, actor, actor_label, reason)
    return key


@transaction.atomic
def rotate_api_key(*, key: ApiKey, overlap: dt.timedelta, actor: User | None) -> IssuedKey:
    """Issue a replacement (same name, workspace and owner, no expiry); the old key keeps
    working for `overlap`, then expires."""
    if overlap not in ROTATION_OVERLAPS.values():
        raise ValidationError({"overlap": "Choose how long the old key keeps working."})
    key = _locked(key)
    now = timezone.now()
    if key.revoked_at is not None:
        raise ValidationError("A revoked key cannot be rotated. Create a new key instead.")
    if key.expires_at is not None and key.expires_at <= now:
        raise ValidationError("An expired key cannot be rotated. Create a new key instead.")
    if key.replaced_by_id is not None:
        raise ValidationError("This key was already rotated. Rotate its replacement instead.")
    issued = _mint(
        organization_id=key.organization_id,
        workspace=key.workspace,
        owner=key.owner,
        name=key.name,
    )
    old_expiry = key.expires_at
    ends = now + overlap
    key.expires_at = ends if old_expiry is None else min(old_expiry, ends)
    key.replaced_by = issued.key
    key.save(update_fields=["expires_at", "replaced_by"])
    announce_key_change(key.key_hash)
    record_event(
        action="apikey.created",
        organization=key.organization,
        actor=actor,
        target=issued.key,
        after={**_key_summary(issued.key), "rotated_from": key.display},
    )
    record_event(
        action="apikey.rotated",
        organization=key.organization,
        actor=actor,
        target=key,
        before={"expires_at": old_expiry},
        after={"expires_at": key.expires_at, "replaced_by": issued.key.display},
    )
    return issued


def _owner_is_told(key: ApiKey, actor: User | None) -> bool:
    """Someone else revoked the key of a user who still exists: they should hear it from us,
    not from their application's errors."""
    return key.owner_id is not None and (actor is None or actor.pk != key.owner_id)


def _revoke_each(keys, *, actor: User | None, reason: str) -> int:
    # Locked first: a key revoked concurrently drops out of the set instead of failing the sweep.
    count = 0
    told: dict[int, tuple[User, list[int]]] = {}
    for key in keys.select_for_update(of=("self",)).select_related("owner").order_by("pk"):
        revoke_api_key(key=key, actor=actor, reason=reason, email_owner=False)
        count += 1
        if _owner_is_told(key, actor):
            told.setdefault(key.owner_id, (key.owner, []))[1].append(key.pk)
    for owner, key_ids in told.values():  # one email per owner, however many keys
        transaction.on_commit(
            lambda owner=owner, key_ids=key_ids: _email_revoked_keys(owner, key_ids), robust=True
        )
    return count


@transaction.atomic
def revoke_keys_of_member(
    *, membership: Membership, actor: User | None, reason: str = "member removed"
) -> int:
    """A member leaves the organization, or takes a role that holds no keys (Billing-only):
    their keys there stop working (audited by `actor`)."""
    keys = ApiKey.objects.filter(
        organization_id=membership.organization_id,
        owner_id=membership.user_id,
        revoked_at__isnull=True,
    )
    return _revoke_each(keys, actor=actor, reason=reason)


@transaction.atomic
def revoke_keys_of_member_in_workspaces(
    *, membership: Membership, workspaces: list[Workspace], actor: User | None
) -> int:
    """A member loses access to `workspaces`: their active keys there stop working."""
    keys = selectors.with_status(
        ApiKey.objects.filter(
            organization_id=membership.organization_id,
            owner_id=membership.user_id,
            workspace__in=workspaces,
        ),
        KeyStatus.ACTIVE,
    )
    return _revoke_each(keys, actor=actor, reason="workspace access removed")


@transaction.atomic
def revoke_keys_in_workspace(*, workspace: Workspace, actor: User | None) -> int:
    """A workspace is archived: every active key in it stops working (audited by `actor`)."""
    return _revoke_each(
        selectors.active_keys_in_workspace(workspace), actor=actor, reason="workspace archived"
    )


@transaction.atomic
def revoke_keys_of_user(*, user: User) -> int:
    """A user account is deleted: its keys in every organization stop working."""
    count = 0
    for key in ApiKey.objects.filter(owner=user, revoked_at__isnull=True):
        revoke_api_key(key=key, actor=None, actor_label="system", reason="account deleted")
        count += 1
    return count


# -- admin keys ------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedAdminKey:
    """A new admin key and its plaintext, which exists nowhere else. Show it once."""

    key: AdminKey
    plaintext: str = field(repr=False)


def admin_key_summary(key: AdminKey) -> dict:
    return {"name": key.name, "key": key.display, "owner": key.owner.email if key.owner else ""}


@sensitive_variables("plaintext")
@transaction.atomic
def create_admin_key(
    *, membership: Membership, name: str, actor: User | None, actor_label: str | None = None
) -> IssuedAdminKey:
    """An admin key acting for `membership`, who must be an Admin (the Admin API can do all an
    Admin can). Only Admins create them, for themselves."""
    name = _clean_name(name)
    membership = (
        Membership.objects.select_for_update()
        .select_related("organization", "user")
        .get(pk=membership.pk)
    )
    if not can(membership, "adminkeys.create"):
        raise ValidationError(
            f"{membership.user.email} is not an Admin of {membership.organization.name}: only "
            "Admins hold admin keys."
        )
    plaintext = generate_key(ADMIN_PREFIX)
    prefix, last4 = display_parts(plaintext)
    key = AdminKey.objects.create(
        organization=membership.organization,
        owner=membership.user,
        name=name,
        key_hash=hash_key(plaintext),
        prefix=prefix,
        last4=last4,
    )
    record_event(
        action="adminkey.created",
        organization=membership.organization,
        actor=actor,
        actor_label=actor_label,
        target=key,
        after=admin_key_summary(key),
    )
    return IssuedAdminKey(key=key, plaintext=plaintext)


@transaction.atomic
def revoke_admin_key(
    *, key: AdminKey, actor: User | None, actor_label: str | None = None, reason: str = ""
) -> AdminKey:
    """Refuse the admin key from its next request on (the Admin API reads it from the database
    on every request: nothing is cached)."""
    key = (
        AdminKey.objects.select_for_update(of=("self",))
        .select_related("organization", "owner")
        .get(pk=key.pk)
    )
    if key.revoked_at is not None:
        raise ValidationError(f"{key.name} was already revoked.")
    key.revoked_at = timezone.now()
    key.save(update_fields=["revoked_at"])
    _record_revoked("adminkey.revoked", key, actor, actor_label, reason)
    return key


def _record_revoked(action: str, key, actor: User | None, actor_label, reason: str) -> None:
    after = {"revoked_at": key.revoked_at}
    if reason:
        after["reason"] = reason
    record_event(
        action=action,
        organization=key.organization,
        actor=actor,
        actor_label=actor_label,
        target=key,
        before={"status": "active"},
        after=after,
    )


@transaction.atomic
def revoke_admin_keys_of_member(*, membership: Membership, actor: User | None, reason: str) -> int:
    """A member leaves, or stops being an Admin: their admin keys stop working."""
    keys = AdminKey.objects.filter(
        organization_id=membership.organization_id,
        owner_id=membership.user_id,
        revoked_at__isnull=True,
    )
    count = 0
    for key in keys.select_for_update().order_by("pk"):
        revoke_admin_key(key=key, actor=actor, reason=reason)
        count += 1
    return count


ADMIN_KEY_LAST_USED_EVERY = dt.timedelta(minutes=1)


def note_admin_key_used(key: AdminKey, *, now: dt.datetime | None = None) -> None:
    """Stamp `last_used_at`, at most once a minute per key (a conditional update: no lock)."""
    now = now or timezone.now()
    if key.last_used_at is None or now - key.last_used_at >= ADMIN_KEY_LAST_USED_EVERY:
        AdminKey.objects.filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=now), pk=key.pk
        ).update(last_used_at=now)
        key.last_used_at = now


# -- the daily hygiene task ------------------------------------------------------------------


def record_expiries(*, now: dt.datetime | None = None) -> int:
    """Write apikey.expired once for each key whose expiry has passed."""
    now = now or timezone.now()
    candidates = ApiKey.objects.filter(
        expires_at__lte=now, revoked_at__isnull=True, expiry_recorded_at__isnull=True
    ).values_list("pk", flat=True)
    recorded = 0
    for pk in candidates:
        with transaction.atomic():
            # The claim: only one run gets to record this expiry.
            claimed = ApiKey.objects.filter(pk=pk, expiry_recorded_at__isnull=True).update(
                expiry_recorded_at=now
            )
            if not claimed:
                continue
            key = ApiKey.objects.select_related("organization").get(pk=pk)
            announce_key_change(key.key_hash)
            record_event(
                action="apikey.expired",
                organization=key.organization,
                actor_label="system",
                target=key,
                after={"expires_at": key.expires_at},
            )
            recorded += 1
    return recorded


NOTICE_EMAILS = {  # templates/emails/<name>-*
    KeyNotice.Reason.EXPIRING: "key-expiring",
    KeyNotice.Reason.AGED: "key-aged",
    KeyNotice.Reason.UNUSED: "key-unused",
}


def _keys_owners_are_reminded_of(now: dt.datetime):
    """Working keys with an owner, not rotated (a rotated key expires by design): the keys
    that hygiene emails are about. "Working" is `selectors.with_status(..., ACTIVE)`."""
    working = selectors.with_status(ApiKey.objects.all(), KeyStatus.ACTIVE, now)
    return working.filter(replaced_by__isnull=True, owner__isnull=False)


def keys_due_notice(reason: str, *, now: dt.datetime):
    keys = _keys_owners_are_reminded_of(now).exclude(notices__reason=reason)
    if reason == KeyNotice.Reason.EXPIRING:
        return keys.filter(expires_at__lte=now + EXPIRY_WARNING)
    if reason == KeyNotice.Reason.AGED:
        return keys.filter(created_at__lte=now - ROTATE_AFTER)
    if reason == KeyNotice.Reason.UNUSED:
        idle_since = now - UNUSED_AFTER
        never_used = Q(last_used_at__isnull=True, created_at__lte=idle_since)
        return keys.filter(Q(last_used_at__lte=idle_since) | never_used)
    raise ValueError(f"Unknown notice reason {reason!r}")


def send_key_notice(*, key: ApiKey, reason: str, now: dt.datetime | None = None) -> bool:
    """Email the key's owner about `reason`, unless that was done before. True if sent."""
    now = now or timezone.now()
    with transaction.atomic():
        try:
            with transaction.atomic():
                KeyNotice.objects.create(key=key, reason=reason, sent_at=now)
        except IntegrityError:
            return False  # claimed by an earlier or concurrent run
        # Sent inside the claim's transaction: if sending fails the claim goes, to retry later.
        _email_owner(key, NOTICE_EMAILS[reason], now=now)
    return True


def _email_owner(key: ApiKey, email_name: str, *, now: dt.datetime) -> None:
    context = {
        "key": key,
        "organization": key.organization,
        "owner": key.owner,
        "days_left": max(0, (key.expires_at - now).days) if key.expires_at else None,
        "age_days": (now - key.created_at).days,
        "last_used_at": key.last_used_at,
        "keys_url": emails.absolute_url(
            reverse("apikeys:list", kwargs={"slug": key.organization.slug})
        ),
    }
    emails.send(emails.make_message(email_name, key.owner.email, context))


def _email_revoked_keys(owner: User, key_ids: list[int]) -> None:
    """Tell `owner` that someone else revoked these keys of theirs (one organization's)."""
    keys = list(
        ApiKey.objects.filter(pk__in=key_ids)
        .select_related("organization", "workspace")
        .order_by("name", "pk")
    )
    if not keys:
        return
    organization = keys[0].organization
    context = {
        "keys": keys,
        "key": keys[0],
        "organization": organization,
        "owner": owner,
        "keys_url": emails.absolute_url(
            reverse("apikeys:list", kwargs={"slug": organization.slug})
        ),
    }
    emails.send(emails.make_message("key-revoked", owner.email, context))


def send_due_notices(*, now: dt.datetime | None = None) -> int:
    now = now or timezone.now()
    sent = 0
    for reason in NOTICE_EMAILS:
        due = keys_due_notice(reason, now=now).select_related("organization", "workspace", "owner")
        for key in due:
            sent += send_key_notice(key=key, reason=reason, now=now)
    return sent


# -- last used -------------------------------------------------------------------------------


def flush_last_used() -> int:
    """Move the last-used stamps the verifiers left in Redis into the database."""
    client = hotpath.client()
    batch = f"{LAST_USED_KEY}:flushing:{uuid.uuid4().hex}"
    try:
        client.rename(LAST_USED_KEY, batch)  # atomic: new stamps go to a fresh hash
    except redis.ResponseError:  # no such key: nothing was used since the last flush
        return 0
    stamps = client.hgetall(batch)
    try:
        updated = 0
        with transaction.atomic():
            for raw_id, raw_time in stamps.items():
                when = dt.datetime.fromtimestamp(int(raw_time), tz=dt.UTC)
                updated += ApiKey.objects.filter(
                    Q(last_used_at__isnull=True) | Q(last_used_at__lt=when), pk=int(raw_id)
                ).update(last_used_at=when)
    except Exception:
        # Put the stamps back for the next run rather than lose them.
        for raw_id, raw_time in stamps.items():
            client.hsetnx(LAST_USED_KEY, raw_id, raw_time)
        raise
    finally:
        client.delete(batch)
    return updated
