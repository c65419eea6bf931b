"""Publishing usage events to the Redis stream, off the request path, with a disk spool.

    from usage.stream import publisher
    publisher().publish(event)        # from the event loop: a deque append, nothing else

A daemon thread per process flushes the queue every `FLUSH_INTERVAL` (or sooner when
`FLUSH_BATCH` events wait) with one XADD per batch to `STREAM` (an entry holds the batch's events
as JSON lines in its field `b`; Redis's cost is per entry). The event loop never
waits for Redis and there is no database write on the request path.

When Redis is unavailable the batch is appended to a spool file (`settings.USAGE_SPOOL_DIR`, one
file per process, JSON lines, fsync'd) and the thread retries Redis every `RETRY_INTERVAL`; once it
answers, every spool file in the directory (those of dead processes too) is replayed and deleted.
Nothing is dropped. A batch can reach the stream twice (Redis took part of a pipeline, then failed;
a replay interrupted by a crash): ingestion inserts with ON CONFLICT DO NOTHING on the event's
(request_id, created_at) and adds to the rollups only what it inserted, so nothing is *stored* or
counted twice (usage/ingest.py).

Counter adjustments handed over with an event (`publish(event, counters=[(key, delta, epoch)])`,
how the spend hook settles a reservation) go in the same MULTI/EXEC as the batch; while Redis is
away they are summed in memory and applied with the first flush that succeeds. A counter is a
hash {total, epoch} (core/counters.py, which holds the adjustment): an adjustment applies to the
counter it was made against (same epoch; "*" for any), never to one rebuilt since (billing.spend
rebuilds a lost counter from stored usage, which already holds the truth) and never recreates a
counter Redis lost.

**The journal: killing a process loses no answered request.** `publish()` first appends the
event's JSON line to this process's journal segment (`<USAGE_SPOOL_DIR>/journal/`, one
`write()`, no fsync: the page cache outlives a killed process, only a machine crash loses it),
then queues it; the gateway publishes before the last byte of its answer is sent. Each flush
swaps in a fresh segment and, once the batch it took is in Redis (or the spool, fsync'd),
deletes the segment that held it. A live process holds an exclusive `flock` on its segments;
every `JOURNAL_SWEEP_EVERY` seconds (and at start) each publisher replays the segments nobody
holds (their process died: SIGKILL, OOM) to the stream and deletes them. A replayed event is
the very line that was queued (same request id and time), so one that had reached Redis before
the kill is refused as a duplicate at ingestion. docs/decisions/0007-usage-journal.md.

What can still be lost: counter adjustments (spend settlements) queued in memory when a
process is killed with SIGKILL (the spend counter keeps the reservation until its rebuild), and
journaled events on a machine that loses power. A clean shutdown flushes (`publisher().close()`,
called at ASGI shutdown and at exit).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import os
import threading
import time
from collections import deque
from pathlib import Path

import orjson
import redis
from django.conf import settings

from core import hotpath
from core.counters import adjust as adjust_counter

logger = logging.getLogger(__name__)

STREAM = "usage:events"  # after settings.GATEWAY_REDIS_NAMESPACE
FIELD = b"e"  # an entry of one event (JSON); the consumer reads both
BATCH_FIELD = b"b"  # an entry of several events, one JSON object a line
FLUSH_INTERVAL = 0.05  # seconds between flushes when traffic is light (a GIL hand-off each)
FLUSH_BATCH = 500
RETRY_INTERVAL = 0.5  # seconds between attempts to reach Redis while it is down
REPLAY_BATCH = 1000
JOURNAL_SWEEP_EVERY = 5.0  # seconds between looks for the journals of dead processes


def dump_event(event: dict) -> bytes:
    """JSON for the stream. An event orjson refuses (an integer beyond 64 bits, say) is made
    serialisable rather than lost, with the batch it travels in."""
    try:
        return orjson.dumps(event)
    except TypeError:
        logger.error("Usage event %s needed repair to be serialised", event.get("request_id"))
        repaired = {
            k: (v if not isinstance(v, int) or -(2**63) <= v < 2**63 else 0)
            for k, v in event.items()
        }
        return orjson.dumps(repaired, default=str)


def stream_key() -> str:
    return settings.GATEWAY_REDIS_NAMESPACE + STREAM


def spool_dir() -> Path:
    return Path(settings.USAGE_SPOOL_DIR)


def journal_dir() -> Path:
    return Path(settings.USAGE_SPOOL_DIR) / "journal"


class JournalSegment:
    """One file of this process's journal, locked (flock) for as long as it is open."""

    __slots__ = ("events", "fd", "path")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        self.events = 0

    def append(self, line: bytes) -> None:
        os.write(self.fd, line)  # in the page cache when it returns: survives SIGKILL
        self.events += 1

    def discard(self) -> None:
        """Its events are delivered: delete it (unlinked while locked, so a sweep that opened
        it meanwhile sees it gone)."""
        try:
            os.unlink(self.path)
        finally:
            os.close(self.fd)

    def abandon(self) -> None:
        """Its events could not be delivered: unlock it, so a sweep replays it."""
        os.close(self.fd)


class UsagePublisher:
    def __init__(self) -> None:
        # (event, counters): the event as its JSON line (publish) or a dict (tests)
        self._queue: deque[tuple[bytes | dict, list | None]] = deque()
        # adjustments not yet applied (Redis was away), by (key, epoch)
        self._counters: dict[tuple[str, str], int] = {}
        self._wake = threading.Event()
        self._lock = threading.Lock()  # one flush at a time (thread, close(), tests)
        self._thread: threading.Thread | None = None
        self._down_until = 0.0
        self._spooled = False  # this process may have left events on disk
        # The journal (see the module docstring): publish() appends under `_journal_lock`, a
        # flush swaps the segment under it, so a segment holds exactly the events of the
        # queue it was swapped out with.
        self._journal_lock = threading.Lock()
        self._journaling = getattr(settings, "USAGE_JOURNAL", True)
        self._segment: JournalSegment | None = None
        self._segment_token = f"{os.getpid()}-{os.urandom(4).hex()}"
        self._segment_serial = 0
        self._next_sweep = 0.0  # monotonic time of the next look for dead processes' journals
        self.published = 0
        self.spooled = 0
        self.replayed = 0

    # -- the request path ------------------------------------------------------------------

    def publish(self, event: dict, counters: list[tuple[str, int, str]] | None = None) -> None:
        """Journal and queue `event`; `counters` = [(key, delta, epoch), ...] are adjustments
        sent with it (the spend hook settles reservations this way, off the event loop)."""
        line = dump_event(event)
        if self._journaling:
            with self._journal_lock:
                try:
                    if self._segment is None:
                        self._segment = self._new_segment()
                    self._segment.append(line + b"\n")
                except OSError as exc:  # a full or read-only disk must not fail the request
                    logger.error("Usage journal write failed (%s): event kept in memory", exc)
                self._queue.append((line, counters))
        else:
            self._queue.append((line, counters))
        if self._thread is None:
            self._start()
        if len(self._queue) >= FLUSH_BATCH:
            self._wake.set()

    # -- the flusher -----------------------------------------------------------------------

    def start(self) -> None:
        """Run the flushing thread now (it starts with the first event otherwise)."""
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="usage-publisher", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(FLUSH_INTERVAL)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # never let the thread die: the next round retries
                logger.exception("Usage publisher flush failed")
                time.sleep(RETRY_INTERVAL)

    def flush(self) -> None:
        """Send what is queued (and, when Redis is back, what was spooled or journaled by
        processes that died)."""
        with self._lock:
            items, segment = self._take()
            try:
                self._send([event for event, _ in items], [c for _, c in items])
            except BaseException:
                if segment is not None:
                    segment.abandon()  # replayed by a sweep: nothing is lost
                raise
            if segment is not None:
                segment.discard()

    def _take(self) -> tuple[list, JournalSegment | None]:
        """Everything queued, and the journal segment that holds it (swapped for a new one)."""
        fresh = None
        if self._segment is not None and self._segment.events:
            try:
                fresh = self._new_segment()  # opened outside the lock: publish() never waits
            except OSError as exc:  # keep writing to the current one, deliver anyway
                logger.error("Usage journal segment not created (%s)", exc)
        with self._journal_lock:
            items = list(self._queue)
            self._queue.clear()
            segment = None
            if fresh is not None:
                segment, self._segment = self._segment, fresh
        return items, segment

    def _new_segment(self) -> JournalSegment:
        directory = journal_dir()
        directory.mkdir(parents=True, exist_ok=True)
        self._segment_serial += 1
        return JournalSegment(
            directory / f"journal-{self._segment_token}-{self._segment_serial:09d}.jsonl"
        )

    def _send(self, batch: list, counter_lists: list) -> None:
        for counters in counter_lists:
            for key, delta, epoch in counters or ():
                self._counters[key, epoch] = self._counters.get((key, epoch), 0) + delta
        sweep = self._journaling and time.monotonic() >= self._next_sweep
        if not batch and not self._spooled and not self._counters and not sweep:
            return
        if time.monotonic() < self._down_until:
            self._spool(batch)
            return
        try:
            client = hotpath.client()
            if self._spooled:
                self._replay(client)
            if sweep:
                self._replay_journals(client)
                self._next_sweep = time.monotonic() + JOURNAL_SWEEP_EVERY
            if batch or self._counters:
                counters, self._counters = self._counters, {}
                try:
                    self._xadd(client, [_line(e) for e in batch], counters)
                except BaseException:
                    for key, delta in counters.items():  # retried with the next flush
                        self._counters[key] = self._counters.get(key, 0) + delta
                    raise
                self.published += len(batch)
        except (redis.RedisError, OSError):
            logger.warning("Redis unavailable: spooling %d usage events", len(batch))
            self._down_until = time.monotonic() + RETRY_INTERVAL
            self._spool(batch)

    def close(self) -> None:
        self._down_until = 0.0
        self.flush()
        with self._journal_lock:  # an empty segment need not wait for a sweep
            if self._segment is not None and not self._segment.events:
                self._segment.discard()
                self._segment = None

    @staticmethod
    def _xadd(client, payloads: list[bytes], counters: dict | None = None) -> None:
        # MULTI/EXEC: a batch and its adjustments apply together or not at all, so a retry
        # after a failure cannot apply an adjustment twice.
        pipe = client.pipeline(transaction=True)
        stream = stream_key()
        for start in range(0, len(payloads), FLUSH_BATCH):
            pipe.xadd(stream, {BATCH_FIELD: b"\n".join(payloads[start : start + FLUSH_BATCH])})
        for (key, epoch), delta in (counters or {}).items():
            if delta:
                adjust_counter(pipe, key, delta, epoch)
        pipe.execute()

    # -- the spool -------------------------------------------------------------------------

    def _spool(self, batch: list) -> None:
        if not batch:
            return
        directory = spool_dir()
        directory.mkdir(parents=True, exist_ok=True)
        data = b"".join(_line(e) + b"\n" for e in batch)
        path = directory / f"usage-{os.getpid()}.jsonl"
        while True:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if os.fstat(fd).st_nlink == 0:
                    continue  # a replay took this file away while we waited: open a new one
                os.write(fd, data)
                os.fsync(fd)
                break
            finally:
                os.close(fd)
        self._spooled = True
        self.spooled += len(batch)

    def _replay(self, client) -> None:
        """Move every spool file's events to the stream, then delete the file."""
        directory = spool_dir()
        for path in sorted(directory.glob("usage-*.jsonl")) if directory.exists() else ():
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # another process is writing or replaying it
                if os.fstat(fd).st_nlink == 0:
                    continue
                with os.fdopen(os.dup(fd), "rb") as handle:
                    lines = [line.rstrip(b"\n") for line in handle if line.strip()]
                for start in range(0, len(lines), REPLAY_BATCH):
                    self._xadd(client, lines[start : start + REPLAY_BATCH])
                os.unlink(path)  # still under the lock: writers that waited reopen a new file
                self.published += len(lines)
                logger.info("Replayed %d spooled usage events from %s", len(lines), path.name)
            finally:
                os.close(fd)
        self._spooled = False

    def _replay_journals(self, client) -> None:
        """Move the events of journal segments nobody holds (their process died) to the
        stream, then delete the segments. A segment of a live process is locked: skipped."""
        directory = journal_dir()
        for path in sorted(directory.glob("journal-*.jsonl")) if directory.exists() else ():
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue  # delivered and deleted meanwhile
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its process is alive (or another sweep has it)
                if os.fstat(fd).st_nlink == 0:
                    continue  # its process delivered it and deleted it before we locked
                with os.fdopen(os.dup(fd), "rb") as handle:
                    lines = [line.rstrip(b"\n") for line in handle if line.strip()]
                for start in range(0, len(lines), REPLAY_BATCH):
                    self._xadd(client, lines[start : start + REPLAY_BATCH])
                os.unlink(path)
                self.replayed += len(lines)
                if lines:
                    logger.warning(
                        "Replayed %d usage events journaled by a process that died (%s)",
                        len(lines), path.name,
                    )  # fmt: skip
            finally:
                os.close(fd)

    def release_journal(self) -> None:
        """In a forked child: close the parent's segment (its lock is the parent's)."""
        if self._segment is not None:
            with contextlib.suppress(OSError):
                os.close(self._segment.fd)
            self._segment = None


def _line(event: bytes | dict) -> bytes:
    return event if isinstance(event, bytes) else dump_event(event)


_publisher: UsagePublisher | None = None
_publisher_lock = threading.Lock()


def publisher() -> UsagePublisher:
    global _publisher
    if _publisher is None:
        with _publisher_lock:
            if _publisher is None:
                _publisher = UsagePublisher()
                # Events of a previous run of this machine may wait on disk.
                _publisher._spooled = True
                atexit.register(_publisher.close)
    return _publisher


def _reset_after_fork() -> None:
    global _publisher
    if _publisher is not None:
        _publisher.release_journal()
    _publisher = None


os.register_at_fork(after_in_child=_reset_after_fork)
