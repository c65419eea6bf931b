"""Invalidating per-process caches over Redis pub/sub: a change made in one process reaches the
caches of every process (every gateway worker) within a second.

    limits_changed = Broadcast("billing:limits", on_message=forget_org, on_reset=forget_all)
    limits_changed.ensure_listening()        # from the hot path: starts the listener once
    limits_changed.announce(str(org_id))     # from a service, inside its transaction

The shape is apikeys/verification.py's, made reusable:
1. `announce` publishes after the writing transaction commits, with `INCR <channel>:version` in
   the same MULTI/EXEC; this process applies the message at once.
2. A listener thread per process and channel calls `on_message` for each message, and compares
   the version counter with the messages it has seen about once a second: a difference means a
   message was missed (or Redis restarted), and `on_reset` drops everything.
3. `healthy()` is False while the listener is not subscribed: callers then rely on their
   cache's TTL alone.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

import redis
from django.db import transaction

logger = logging.getLogger(__name__)

POLL_INTERVAL = 0.25
VERSION_CHECK_INTERVAL = 1.0
HEALTHY_WINDOW = 2.0


def _client():
    from core import hotpath

    return hotpath.client()


class Broadcast:
    def __init__(
        self,
        channel: str,
        *,
        on_message: Callable[[str], None],
        on_reset: Callable[[], None],
    ) -> None:
        self.channel = channel
        self.on_message = on_message
        self.on_reset = on_reset
        self._reset_process_state()
        os.register_at_fork(after_in_child=self._reset_process_state)

    def _reset_process_state(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._version = 0
        self.healthy_until = 0.0

    @property
    def version_key(self) -> str:
        return self.channel + ":version"

    def healthy(self) -> bool:
        return time.monotonic() < self.healthy_until

    # -- announcing ------------------------------------------------------------------------

    def announce(self, message: str) -> None:
        """Apply `message` here now, and in every process once the transaction commits."""
        self.on_message(message)
        transaction.on_commit(lambda: self.publish(message), robust=True)

    def publish(self, message: str) -> None:
        try:
            pipe = _client().pipeline(transaction=True)
            pipe.incr(self.version_key)
            pipe.publish(self.channel, message)
            pipe.execute()
        except redis.RedisError:
            logger.exception("Could not announce %s on %s", message, self.channel)

    # -- listening -------------------------------------------------------------------------

    def ensure_listening(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._listen, name=f"broadcast-{self.channel}", daemon=True
                    )
                    self._thread.start()

    def _listen(self) -> None:
        while True:
            try:
                self._listen_once()
            except Exception:
                logger.warning("Listener of %s lost Redis; retrying", self.channel, exc_info=True)
            self.healthy_until = 0.0
            time.sleep(0.5)

    def _listen_once(self) -> None:
        client = _client()
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(self.channel)
            deadline = time.monotonic() + 5
            while True:
                message = pubsub.get_message(timeout=1.0)
                if message and message["type"] == "subscribe":
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"No subscription confirmation for {self.channel}")
            self._version = int(client.get(self.version_key) or 0)
            self.on_reset()  # anything could have changed while nobody listened
            last_check = time.monotonic()
            while True:
                self._drain(pubsub, POLL_INTERVAL)
                now = time.monotonic()
                if now - last_check >= VERSION_CHECK_INTERVAL:
                    version = int(client.get(self.version_key) or 0)
                    if version != self._version:
                        self._drain(pubsub, 0.05)
                        if version != self._version:
                            self.on_reset()
                        self._version = version
                    last_check = now
                self.healthy_until = time.monotonic() + HEALTHY_WINDOW
        finally:
            self.healthy_until = 0.0
            pubsub.close()

    def _drain(self, pubsub, timeout: float) -> None:
        message = pubsub.get_message(timeout=timeout)
        while message is not None:
            if message["type"] == "message":
                data = message["data"]
                self._version += 1
                try:
                    self.on_message(data.decode() if isinstance(data, bytes) else data)
                except Exception:
                    logger.exception("Handling %r on %s failed", data, self.channel)
            message = pubsub.get_message(timeout=0)
