"""Redis counters of the hot path: their layout and the script that adjusts them.

A counter is a hash `{total, epoch}`: `total` an integer (micro-dollars for spend counters),
`epoch` an id of this counter's life. Billing creates counters and reserves against them
(billing/spend.py); the usage publisher (usage/stream.py) applies the settlements handed over
with events. The adjustment lives here, on the ground floor, so the publisher does not need to
know billing's layout and billing does not need usage's publisher to define it.

An adjustment names the epoch it was made against: it applies to that counter's life only ("*":
to whatever counter exists), never to a counter rebuilt since (a rebuild counts stored usage,
which already holds the truth) and never recreates a counter Redis lost.
"""

TOTAL = "total"
EPOCH = "epoch"
ANY_EPOCH = "*"

# KEYS[1] counter; ARGV[1] delta, ARGV[2] epoch (or "*")
#   → the new total, or nil when the counter is missing or in another epoch.
ADJUST_SCRIPT = """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if epoch and (ARGV[2] == '*' or epoch == ARGV[2]) then
  return redis.call('HINCRBY', KEYS[1], 'total', ARGV[1])
end
return false
"""


def adjust(pipe, key: str, delta: int, epoch: str) -> None:
    """Queue one adjustment on a Redis pipeline (or client)."""
    pipe.eval(ADJUST_SCRIPT, 1, key, delta, epoch)
