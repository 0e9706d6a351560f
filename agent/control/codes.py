"""Numbers shared by the C filter (ext/batchflow_ext.h) and the Python
reference; agent/control/cfilter.py checks at import that both agree."""
from .. import abi

# Rule types.
DISCARD, FOCUS, RULE_ON = 1, 2, 3
RULE_TYPES = {"DISCARD": DISCARD, "FOCUS": FOCUS, "RULE_ON": RULE_ON}
RULE_NAMES = {v: k for k, v in RULE_TYPES.items()}

# What offer() did with a record.
KEEP, DROP, HOLD, URGENT, FULL = 0, 1, 2, 3, 4

# Report kinds drained by reports().
REPORT_DISCARD, REPORT_HELD, REPORT_OVERFLOW, REPORT_TRUNCATED, REPORT_MALFORMED = 1, 2, 3, 4, 5

# Window ends: timestamps are u64 CLOCK_MONOTONIC ns.
TS_MIN, TS_MAX = 0, (1 << 64) - 1

# Limits, the same on both sides.
MAX_RULES = 256
PIDSET_MAX = 65536        # members of one pid set (a descendants set stops growing)
TRUNC_MASK = abi.BF_TRUNC_PATH | abi.BF_TRUNC_ARG | abi.BF_TRUNC_ARGC

DEFAULT_HOLD_COUNT = 10000
DEFAULT_HOLD_BYTES = 4 << 20
DEFAULT_HOLD_MS = 2000

STAT_FIELDS = ("seen", "kept", "dropped", "held", "focused", "overflow", "expired",
               "released", "late", "truncated", "malformed", "set_full",
               "held_now", "held_bytes", "watermark", "rules")

MIN_BATCH = abi.RECORD_MAX     # the largest record: a batch must hold it
