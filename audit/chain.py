"""The hash chains that make the audit log tamper-evident, and their file format.

Each organization's events form one chain; events with no organization (sign-ins, failed
sign-ins) form the site's chain. An event stores `hash` = SHA-256 of its own fields (below) in
canonical JSON, and `prev_hash` = the hash of the event before it in the same chain — or, for
the first event after an archive, the archive's last hash ("anchor"); the very first event has
"". So an edited event no longer matches its hash, and a removed or reordered one breaks a
link. Deleting the newest events leaves no trace in the chain itself: keep the last hash of an
export somewhere the server cannot change, and check a later export contains it
(`verify_audit_chain --file F --contains HASH`).

One chain per organization (not one for the site) so that an organization's own export is a
complete chain: an Admin can verify it offline without seeing other organizations' events.
docs/decisions/0010-audit-chain-per-organization.md.

The file format (exports and archives) is JSON Lines:
    line 1   {"format": "console-audit-chain", "version": 1, "organization": slug,
              "organization_id": id, "anchor": the first event's expected prev_hash, ...}
    then     one event per line: {"id": …, the HASHED_FIELDS…, "hash": …}
    last     {"end": true, "events": count, "last_hash": …}
`verify_lines()` checks such a file with no database: `manage.py verify_audit_chain --file F`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

FORMAT = "console-audit-chain"
VERSION = 1
# Exactly these fields are hashed, in canonical JSON (sorted keys, no spaces).
HASHED_FIELDS = (
    "created_at", "organization_id", "actor_id", "actor_label", "action", "target_type",
    "target_id", "target_label", "ip_address", "user_agent", "before", "after", "prev_hash",
)  # fmt: skip


def hash_fields(fields: dict[str, Any]) -> str:
    payload = {name: fields.get(name) for name in HASHED_FIELDS}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def event_fields(event) -> dict[str, Any]:
    """The hashed fields of a stored event, as plain JSON values."""
    return {
        "created_at": event.created_at.isoformat(),
        "organization_id": event.organization_id,
        "actor_id": event.actor_id,
        "actor_label": event.actor_label,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "target_label": event.target_label,
        "ip_address": event.ip_address,
        "user_agent": event.user_agent,
        "before": event.before,
        "after": event.after,
        "prev_hash": event.prev_hash,
    }


def event_hash(event) -> str:
    return hash_fields(event_fields(event))


@dataclass(frozen=True)
class Break:
    """Where a chain stops holding: the event (its id) or file line, and why."""

    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


def first_break(events: Iterable, anchor: str = "") -> Break | None:
    """The first broken link among stored events of one chain, in id order, or None."""
    previous = anchor
    for event in events:
        if event.prev_hash != previous:
            return Break(
                f"event {event.id}",
                "does not link to the event before it (an event was removed, reordered or "
                "inserted)",
            )
        if event_hash(event) != event.hash:
            return Break(f"event {event.id}", "its content does not match its hash (edited)")
        previous = event.hash
    return None


# -- files ----------------------------------------------------------------------------------


def header_line(*, organization, anchor: str, exported_at: str, kind: str = "export") -> str:
    return _line(
        {
            "format": FORMAT,
            "version": VERSION,
            "kind": kind,
            "organization": organization.slug if organization else None,
            "organization_id": organization.pk if organization else None,
            "anchor": anchor,
            "exported_at": exported_at,
            "hash_algorithm": "sha256 of canonical JSON (sorted keys, no spaces) of "
            + ", ".join(HASHED_FIELDS),
        }
    )


def event_line(event) -> str:
    return _line({"id": event.id, **event_fields(event), "hash": event.hash})


def end_line(*, events: int, last_hash: str) -> str:
    return _line({"end": True, "events": events, "last_hash": last_hash})


def _line(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


@dataclass
class FileReport:
    events: int = 0
    anchor: str = ""
    last_hash: str = ""
    organization: str | None = None
    broken: Break | None = None
    hashes: set[str] | None = None


def verify_lines(lines: Iterable[str], *, keep_hashes: bool = False) -> FileReport:
    """Check an exported or archived file, line by line, without a database."""
    report = FileReport(hashes=set() if keep_hashes else None)
    numbered: Iterator[tuple[int, str]] = (
        (number, text) for number, text in enumerate(lines, start=1) if text.strip()
    )

    def broken(number: int, reason: str) -> FileReport:
        report.broken = Break(f"line {number}", reason)
        return report

    first = next(numbered, None)
    if first is None:
        return broken(1, "the file is empty")
    header = _parse(first[1])
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        return broken(first[0], f"not a {FORMAT} file (its first line is not the header)")
    if header.get("version") != VERSION:
        return broken(first[0], f"version {header.get('version')!r} is not {VERSION}")
    report.organization = header.get("organization")
    report.anchor = previous = str(header.get("anchor") or "")
    for number, text in numbered:
        record = _parse(text)
        if not isinstance(record, dict):
            return broken(number, "not a JSON object (the line was damaged)")
        if record.get("end") is True:
            if record.get("events") != report.events:
                return broken(
                    number,
                    f"the closing line counts {record.get('events')} events, the file has "
                    f"{report.events} (lines were removed or added)",
                )
            if record.get("last_hash", "") != previous:
                return broken(number, "the closing line's last hash is not the last event's")
            if next(numbered, None) is not None:
                return broken(number + 1, "lines follow the closing line")
            report.last_hash = previous
            return report
        missing = [name for name in (*HASHED_FIELDS, "hash") if name not in record]
        if missing:
            return broken(number, f"the event lacks {', '.join(missing)}")
        if record["prev_hash"] != previous:
            return broken(
                number,
                f"event {record.get('id')} does not link to the event before it (an event was "
                "removed, reordered or inserted)",
            )
        if hash_fields(record) != record["hash"]:
            return broken(
                number, f"event {record.get('id')}'s content does not match its hash (edited)"
            )
        previous = record["hash"]
        report.events += 1
        if report.hashes is not None:
            report.hashes.add(previous)
    report.broken = Break("end of file", "no closing line: the file was cut short")
    return report


def _parse(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return None
