"""Deterministic token accounting and text generation for the upstream simulator.

Nothing here is a real tokenizer: the point is that every number is a pure function of the request
(plus, for prompt caching, of which prefixes this process has already seen), so tests and benchmarks
can predict it.

Input tokens
    ``B`` is the byte count of the request's *input content*, walked in Anthropic's prompt order
    (``tools`` → ``system`` → ``messages``):

    * a string (``system`` string, message ``content`` string): its UTF-8 byte length;
    * a ``text`` block: the UTF-8 byte length of its ``text``;
    * a ``tool_result`` block: the bytes of its ``content`` (string or blocks, recursively);
    * any other block (image, document, tool_use, ...) and every tool definition: the byte length of
      its compact JSON with ``cache_control`` removed.

    ``input_total = max(1, ceil(B / 4))``. ``count_tokens`` returns ``input_total``.

Prompt caching
    The *cache breakpoint* is the last piece (tool, system block or content block) carrying
    ``cache_control``; a top-level ``cache_control`` puts it on the last piece. Without one, nothing
    is cached. With one, ``P`` is the byte count of everything up to and including the breakpoint
    and ``cached = min(input_total - 1, ceil(P / 4))`` (one token always stays uncached, as the real
    API's message framing does). The prefix is identified by a hash of the model
    and the prefix pieces (with their roles). The first time this process sees that hash the cached
    part is reported as ``cache_creation_input_tokens``; every later time as
    ``cache_read_input_tokens``. ``input_tokens`` is always ``input_total - cached``, so
    ``input_tokens + cache_creation_input_tokens + cache_read_input_tokens == input_total``.
    Unlike the real API there is no minimum cacheable length and no expiry (the ledger is a bounded
    in-process dict); each worker process keeps its own ledger.

Output tokens
    ``L`` is the UTF-8 byte length of the text of the last ``user`` message (its string content, or
    the concatenated ``text`` of its text blocks). The model "wants" ``8 + L % 32`` tokens;
    ``output_tokens = min(max_tokens, 8 + L % 32)`` and ``stop_reason`` is ``"max_tokens"`` when
    the cap cut it short, else ``"end_turn"``. The text is ``output_tokens`` words taken cyclically
    from a fixed word list starting at index ``L % len(WORDS)``, joined by single spaces: one word
    is one token.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ._json import dumps, dumps_sorted

BYTES_PER_TOKEN = 4
BASE_OUTPUT_TOKENS = 8
OUTPUT_TOKEN_SPREAD = 32

# One word is one output token; prose rather than lorem ipsum so demo output reads naturally.
_PROSE = (
    "the quick simulated model answers every request with a stream of plain words so that a "
    "gateway can count relay and meter them without ever calling the real service which keeps "
    "tests fast deterministic cheap and entirely offline while still looking like prose when a "
    "person reads it"
)
WORDS: tuple[str, ...] = tuple(_PROSE.split())


def utf8_len(text: str) -> int:
    # isascii() is O(1) in CPython and most prompts are ASCII: skip the encode allocation.
    return len(text) if text.isascii() else len(text.encode())


def _without_cache_control(obj: dict[str, Any]) -> dict[str, Any]:
    if "cache_control" in obj:
        return {k: v for k, v in obj.items() if k != "cache_control"}
    return obj


def content_bytes(content: Any) -> int:
    if isinstance(content, str):
        return utf8_len(content)
    if isinstance(content, list):
        return sum(block_bytes(block) for block in content)
    return 0


def block_bytes(block: Any) -> int:
    if not isinstance(block, dict):
        return len(dumps(block))
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        return utf8_len(text) if isinstance(text, str) else 0
    if kind == "tool_result":
        return content_bytes(block.get("content"))
    return len(dumps(_without_cache_control(block)))


# A piece is (role tag, object, byte count, cache_control or None). The role tag keeps "user said X"
# and "assistant said X" apart in the prefix hash.
Piece = tuple[bytes, Any, int, Any]


def iter_pieces(body: dict[str, Any]) -> Iterator[Piece]:
    tools = body.get("tools")
    if isinstance(tools, list):
        for tool in tools:
            if isinstance(tool, dict):
                yield (
                    b"T",
                    tool,
                    len(dumps(_without_cache_control(tool))),
                    tool.get("cache_control"),
                )
    system = body.get("system")
    if isinstance(system, str):
        yield b"S", system, utf8_len(system), None
    elif isinstance(system, list):
        for block in system:
            cc = block.get("cache_control") if isinstance(block, dict) else None
            yield b"S", block, block_bytes(block), cc
    for message in body.get("messages") or ():
        role = b"A" if message.get("role") == "assistant" else b"U"
        content = message.get("content")
        if isinstance(content, str):
            yield role, content, utf8_len(content), None
        elif isinstance(content, list):
            for block in content:
                cc = block.get("cache_control") if isinstance(block, dict) else None
                yield role, block, block_bytes(block), cc


def ceil_tokens(nbytes: int) -> int:
    return -(-nbytes // BYTES_PER_TOKEN)


@dataclass(slots=True)
class InputMeasure:
    total_tokens: int
    cached_tokens: int = 0
    prefix_key: bytes | None = None
    ttl_1h: bool = False


def measure_input(body: dict[str, Any]) -> InputMeasure:
    """Count input tokens and locate the cache breakpoint (see the module docstring)."""
    total_bytes = 0
    prefix_bytes = 0
    prefix_pieces = 0
    breakpoint_cc: Any = None
    count = 0
    for _role, _obj, nbytes, cc in iter_pieces(body):
        total_bytes += nbytes
        count += 1
        if cc is not None:
            prefix_bytes, prefix_pieces, breakpoint_cc = total_bytes, count, cc
    top_cc = body.get("cache_control")
    if top_cc is not None and count:
        prefix_bytes, prefix_pieces, breakpoint_cc = total_bytes, count, top_cc

    total = max(1, ceil_tokens(total_bytes))
    if breakpoint_cc is None:
        return InputMeasure(total)

    # Only requests that ask for caching pay for hashing their prefix.
    digest = hashlib.blake2b(digest_size=16)
    model = body.get("model")
    digest.update(model.encode() if isinstance(model, str) else b"")
    for index, (role, obj, _nbytes, _cc) in enumerate(iter_pieces(body)):
        if index == prefix_pieces:
            break
        digest.update(role)
        digest.update(obj.encode() if isinstance(obj, str) else dumps_sorted(obj))
    ttl_1h = isinstance(breakpoint_cc, dict) and breakpoint_cc.get("ttl") == "1h"
    # At least one token stays uncached, as with the real API (its message framing is never cached).
    cached = min(total - 1, ceil_tokens(prefix_bytes))
    return InputMeasure(total, cached, digest.digest(), ttl_1h)


class PromptCacheLedger:
    """Remembers which cache prefixes this process has seen (bounded, oldest forgotten first)."""

    def __init__(self, max_entries: int = 65_536) -> None:
        self._seen: dict[bytes, None] = {}
        self._max = max_entries

    def seen_before(self, key: bytes) -> bool:
        """Return whether ``key`` was seen before, recording it if not."""
        if key in self._seen:
            return True
        if len(self._seen) >= self._max:
            # dicts keep insertion order: drop the oldest entry.
            del self._seen[next(iter(self._seen))]
        self._seen[key] = None
        return False

    def clear(self) -> None:
        self._seen.clear()


def last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "".join(
                block["text"]
                for block in content
                if isinstance(block, dict)
                and block.get("type") == "text"
                and isinstance(block.get("text"), str)
            )
        return ""
    return ""


def plan_output(user_text: str, max_tokens: int) -> tuple[int, int, str]:
    """Return (output_tokens, first word index, stop_reason) for the last user message text."""
    length = utf8_len(user_text)
    wanted = BASE_OUTPUT_TOKENS + length % OUTPUT_TOKEN_SPREAD
    if wanted > max_tokens:
        return max_tokens, length % len(WORDS), "max_tokens"
    return wanted, length % len(WORDS), "end_turn"


def words(start: int, count: int) -> list[str]:
    n = len(WORDS)
    return [WORDS[(start + i) % n] for i in range(count)]
