"""Writes to a historian and is killed: the SIGKILL test's child.

argv: STATE_DIR ROUNDS PER_ROUND.  Each round writes PER_ROUND points of
series `w` (value = index, t = index) and flushes, then prints the total
flushed; then it writes PER_ROUND more without flushing, prints `unflushed`
and waits to be killed.
"""
import sys
import time

from agent.history.store import Historian

state, rounds, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
h = Historian(state, flush_interval=1e9)
i = 0
for _ in range(rounds):
    for _ in range(per):
        h.write("w", float(i), t=float(i))
        i += 1
    h.flush()
    print(f"flushed {i}", flush=True)
for _ in range(per):
    h.write("w", float(i), t=float(i))
    i += 1
print(f"unflushed {h.pending()}", flush=True)
while True:
    time.sleep(60)
